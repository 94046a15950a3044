/* bprog.c -- the per-connection program of the wrapper benchmark: the same
 * binary runs under every wrapper (tcpserver, stunnel exec=, hitch in front
 * of tcpserver, socat EXEC:, tcpserver-ssl), on its fds 0 and 1, as a ucspi
 * program does.  No TLS, no libmailtls.
 *
 * It writes a greeting line, then reads one command line from the client:
 *   (end of file)  exit at once (the handshake and connection-rate runs)
 *   "H"            hold: wait for end of file (the idle-connection memory run)
 *   "E"            echo every byte back until end of file (round trips)
 *   "U n"          read n bytes, then answer "ok n" (upload); then wait for EOF
 *   "D n"          write n bytes, then wait for end of file (download)
 * Every other line: "500 bad command", exit 1.  Bytes that arrived behind
 * the command line are part of the upload (or echoed).  The reads and
 * writes are 128 KiB, as cat(1) does.  A write that fails (the client left)
 * exits 111.
 *
 * Two builds of this one source (run.sh makes both):
 *   cc -O2 bprog.c                         an ordinary glibc program
 *   cc -O2 -DNOLIBC -ffreestanding -fno-stack-protector -fno-pie -static -nostdlib bprog.c
 *                                          x86-64 Linux, raw system calls and
 *                                          no C library at all
 * The second exists because on a KVM/Firecracker guest glibc's start-up
 * (init_cpu_features, the cache-size probing with CPUID leaf 2/4, every
 * CPUID a VM exit) costs about 0.6 ms of CPU per exec, more than a
 * wrapper's whole per-connection work: it would hide the wrappers'
 * differences.  run.sh measures connection rates with both. */

#ifdef NOLIBC
typedef long ssize_t;
typedef unsigned long size_t;

static long sys3(long n, long a, long b, long c)
{
	long r;
	__asm__ volatile ("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}
#define EINTR 4
static ssize_t read(int fd, void *p, size_t n) { return sys3(0, fd, (long)p, (long)n); }
static ssize_t write(int fd, const void *p, size_t n) { return sys3(1, fd, (long)p, (long)n); }
static void _exit(int st)
{
	for (;;)
		sys3(231, st, 0, 0);   /* exit_group */
}
static int errno_of(ssize_t r) { return r < 0 ? (int)-r : 0; }

/* The compiler may call these even with -ffreestanding. */
void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}
void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

int main(void);

/* The entry point: the stack is 16-byte aligned at _start; call main with
 * the alignment the ABI wants and exit with its status. */
__asm__(".text\n.global _start\n_start:\n"
	"xor %rbp, %rbp\n"
	"and $-16, %rsp\n"
	"call main\n"
	"mov %eax, %edi\n"
	"mov $231, %eax\n"
	"syscall\n");
#else
#include <errno.h>
#include <unistd.h>
static int errno_of(ssize_t r) { return r < 0 ? errno : 0; }
#endif

#define BUFSZ (128 * 1024)

static unsigned char buf[BUFSZ];

static void put(const void *p, size_t n)
{
	const unsigned char *q = p;
	while (n > 0) {
		ssize_t w = write(1, q, n);
		if (w < 0 && errno_of(w) == EINTR)
			continue;
		if (w <= 0)
			_exit(111);
		q += w;
		n -= (size_t)w;
	}
}

static ssize_t get(void *p, size_t n)
{
	ssize_t r;
	do
		r = read(0, p, n);
	while (r < 0 && errno_of(r) == EINTR);
	return r;
}

static void wait_eof(void)
{
	while (get(buf, sizeof buf) > 0)
		;
	_exit(0);
}

static unsigned long long number(const unsigned char *s)
{
	unsigned long long n = 0;
	while (*s == ' ')
		s++;
	while (*s >= '0' && *s <= '9')
		n = n * 10 + (unsigned)(*s++ - '0');
	return n;
}

static size_t fmt(char *out, const char *prefix, unsigned long long n)
{
	char d[24];
	size_t k = 0, len = 0;
	while (*prefix)
		out[len++] = *prefix++;
	do
		d[k++] = (char)('0' + n % 10);
	while ((n /= 10) > 0);
	while (k > 0)
		out[len++] = d[--k];
	out[len++] = '\n';
	return len;
}

int main(void)
{
	static const char greeting[] = "220 bprog ready\r\n";
	size_t have = 0, line = 0, i;
	unsigned long long n, got;

	put(greeting, sizeof greeting - 1);
	/* One command line; it and what follows it land in buf. */
	for (;;) {
		ssize_t r;
		for (; line < have; line++)
			if (buf[line] == '\n')
				break;
		if (line < have)
			break;
		if (have == sizeof buf)
			_exit(1);
		r = get(buf + have, sizeof buf - have);
		if (r <= 0)
			_exit(0);
		have += (size_t)r;
	}
	line++;
	have -= line;
	switch (buf[0]) {
	case 'H':
		wait_eof();
		break;
	case 'E':
		if (have)
			put(buf + line, have);
		for (;;) {
			ssize_t r = get(buf, sizeof buf);
			if (r <= 0)
				_exit(0);
			put(buf, (size_t)r);
		}
	case 'U': {
		char ok[48];
		buf[line - 1] = 0;
		n = number(buf + 1);
		got = have;
		while (got < n) {
			ssize_t r = get(buf, sizeof buf);
			if (r <= 0)
				_exit(1);
			got += (unsigned long long)r;
		}
		put(ok, fmt(ok, "ok ", got));
		wait_eof();
		break;
	}
	case 'D':
		buf[line - 1] = 0;
		n = number(buf + 1);
		for (i = 0; i < sizeof buf; i++)
			buf[i] = 'd';
		while (n > 0) {
			size_t k = n > sizeof buf ? sizeof buf : (size_t)n;
			put(buf, k);
			n -= k;
		}
		wait_eof();
		break;
	}
	put("500 bad command\r\n", 17);
	_exit(1);
	return 1;
}
