/* tlsrpt-report -- a day of qmail-remote's TLS-RPT events (queue/tlsrpt)
 * turned into the RFC 8460 JSON reports, one file per policy domain; see
 * tlsrpt-report.8.  Sending them is left to the administrator's tools.
 * ISC license: see LICENSE. */
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "eventline.h"
#include "report.h"

#define EXIT_USAGE 100
#define EXIT_TEMP 111
#define LINE_LIMIT 65536

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
	fputs("usage: tlsrpt-report -o organization -c contact [-s sender-domain] [-d YYYY-MM-DD] [-l logdir]"
	      " [-w outdir] [-r]\n", stderr);
	exit(EXIT_USAGE);
}

static void temp(const char *what, const char *name) __attribute__((noreturn));
static void temp(const char *what, const char *name)
{
	fprintf(stderr, "tlsrpt-report: %s %s: %s\n", what, name, strerror(errno));
	exit(EXIT_TEMP);
}

/* |s| "YYYY-MM-DD" into the UTC midnight it begins with: 0, or -1. */
static int day_parse(const char *s, time_t *start)
{
	struct tm tm;
	char back[16];
	const char *end;
	memset(&tm, 0, sizeof tm);
	end = strptime(s, "%Y-%m-%d", &tm);
	if (!end || *end || strlen(s) != 10)
		return -1;
	*start = timegm(&tm);
	if (*start == (time_t)-1 || !strftime(back, sizeof back, "%Y-%m-%d", gmtime_r(start, &tm)) || strcmp(back, s))
		return -1;
	return 0;
}

/* A name safe in a file name and a report-id: host name bytes only. */
static int name_ok(const char *s)
{
	if (!*s || strlen(s) > 253 || *s == '.' || *s == '-')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		    *s == '.'))
			return 0;
	return 1;
}

/* The rua= of the one TLSRPTv1 record at _smtp._tls.<domain> into |rua|:
 * 1, 0 (none: no record, not exactly one, or one whose rua is no text
 * fit for the output line), -1 (a temporary failure).  The record is the
 * domain's, so hostile: its rua may hold no TAB, newline or other control
 * byte that would forge a line of the output a script acts on. */
static int rua_lookup(const char *domain, char *rua, size_t n)
{
	static unsigned char ans[65536];   /* a DNS message's largest: res_query never cuts it */
	char name[300], rec[4096], found[4096] = "";
	int len, count = 0;
	ns_msg msg;
	snprintf(name, sizeof name, "_smtp._tls.%s", domain);
	len = res_query(name, ns_c_in, ns_t_txt, ans, sizeof ans);
	if (len < 0)
		return h_errno == HOST_NOT_FOUND || h_errno == NO_DATA ? 0 : -1;
	/* res_query returns the answer's whole length, also when it is larger
	 * than the buffer */
	if ((size_t)len > sizeof ans || ns_initparse(ans, len, &msg) < 0)
		return -1;
	for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
		ns_rr rr;
		const unsigned char *d;
		size_t o = 0, c = 0, k = 0, rl;
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			return -1;
		if (ns_rr_type(rr) != ns_t_txt)
			continue;
		d = ns_rr_rdata(rr);
		rl = ns_rr_rdlen(rr);
		while (k < rl) {   /* the record's strings joined, as far as they fit */
			size_t sl = d[k++];
			if (sl > rl - k)
				return -1;
			if (o == c && c + sl < sizeof rec) {
				memcpy(rec + c, d + k, sl);
				c += sl;
			}
			o += sl;
			k += sl;
		}
		rec[c] = 0;
		if (strncmp(rec, "v=TLSRPTv1", 10) || (rec[10] && rec[10] != ';' && rec[10] != ' '))
			continue;
		count++;   /* a record too long to keep still counts, with no rua we print */
		snprintf(found, sizeof found, "%s", o == c ? rec : "");
	}
	if (count != 1)
		return 0;
	{
		char *p = strstr(found, "rua="), *e;
		if (!p || (p > found && p[-1] != ';' && p[-1] != ' '))
			return 0;
		p += 4;
		p += strspn(p, " \t");
		e = p + strcspn(p, ";");
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		for (const char *c = p; c < e; c++)
			if (*c < 0x20 || *c > 0x7e) {
				fprintf(stderr, "tlsrpt-report: _smtp._tls.%s: rua holds bytes other than printable ASCII: "
				    "not used\n", domain);
				return 0;
			}
		snprintf(rua, n, "%.*s", (int)(e - p), p);
	}
	return rua[0] != 0;
}

int main(int argc, char **argv)
{
	const char *org = NULL, *contact = NULL, *sender = NULL, *day = NULL, *logdir = NULL, *outdir = ".";
	const char *home = getenv("QMAILHOME");
	char dayb[16], path[4096], start[32], end[32], *line = NULL;
	size_t cap = 0, damaged = 0, outside = 0;
	time_t t0;
	struct tm tm;
	struct report *r;
	int c, lookup = 0, rc = 0;
	ssize_t len;
	FILE *in;
	while ((c = getopt(argc, argv, "o:c:s:d:l:w:r")) != -1) {
		switch (c) {
		case 'o': org = optarg; break;
		case 'c': contact = optarg; break;
		case 's': sender = optarg; break;
		case 'd': day = optarg; break;
		case 'l': logdir = optarg; break;
		case 'w': outdir = optarg; break;
		case 'r': lookup = 1; break;
		default: usage();
		}
	}
	if (optind != argc || !org || !*org || !contact || !*contact)
		usage();
	if (!sender)
		sender = strrchr(contact, '@') ? strrchr(contact, '@') + 1 : NULL;
	if (!sender || !name_ok(sender)) {
		fputs("tlsrpt-report: no usable sender domain (-s, or the domain of -c's address)\n", stderr);
		usage();
	}
	if (!day) {
		time_t y = time(NULL) - 86400;
		strftime(dayb, sizeof dayb, "%Y-%m-%d", gmtime_r(&y, &tm));
		day = dayb;
	}
	if (day_parse(day, &t0) < 0) {
		fprintf(stderr, "tlsrpt-report: not a day (YYYY-MM-DD): %s\n", day);
		usage();
	}
	if (!logdir) {
		static char deflog[3072];
		snprintf(deflog, sizeof deflog, "%s/queue/tlsrpt", home && *home ? home : "/var/qmail");
		logdir = deflog;
	}
	if ((size_t)snprintf(path, sizeof path, "%s/%s", logdir, day) >= sizeof path) {
		fputs("tlsrpt-report: the log directory's name is too long\n", stderr);
		usage();
	}
	if (!(r = report_new()))
		temp("out of memory reading", path);
	in = fopen(path, "r");
	if (!in && errno != ENOENT)
		temp("cannot read", path);
	while (in && (len = getline(&line, &cap, in)) >= 0) {
		static struct event e;
		if (len == 0 || line[len - 1] != '\n' || len > LINE_LIMIT || event_parse(line, (size_t)len - 1, &e) < 0) {
			damaged++;   /* a cut or foreign line: never a report's content */
			continue;
		}
		if (e.time < (long long)t0 || e.time >= (long long)t0 + 86400) {
			outside++;
			continue;
		}
		if (report_add(r, &e) < 0)
			temp("out of memory reading", path);
	}
	if (in && ferror(in))
		temp("cannot read", path);
	if (in)
		fclose(in);
	if (damaged)
		fprintf(stderr, "tlsrpt-report: %zu damaged lines skipped in %s\n", damaged, path);
	if (outside)
		fprintf(stderr, "tlsrpt-report: %zu events outside %s skipped in %s\n", outside, day, path);
	snprintf(start, sizeof start, "%sT00:00:00Z", day);
	snprintf(end, sizeof end, "%sT23:59:59Z", day);
	for (size_t i = 0; i < report_ndomains(r); i++) {
		const char *dom = report_domain(r, i);
		char file[4096], tmp[4200], id[600], rua[4096] = "";
		struct report_meta m = { org, contact, id, start, end };
		FILE *f;
		int fd;
		if (!name_ok(dom)) {
			fprintf(stderr, "tlsrpt-report: policy domain %s is not a host name; left out\n", dom);
			continue;
		}
		snprintf(id, sizeof id, "%s.%s@%s", day, dom, sender);
		if ((size_t)snprintf(file, sizeof file, "%s/%s!%s!%lld!%lld.json", outdir, sender, dom, (long long)t0,
		    (long long)t0 + 86399) >= sizeof file) {
			fputs("tlsrpt-report: the output directory's name is too long\n", stderr);
			usage();
		}
		snprintf(tmp, sizeof tmp, "%s.tmp%ld", file, (long)getpid());
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0)
			temp("cannot write", tmp);
		if (!(f = fdopen(fd, "w"))) {
			unlink(tmp);
			temp("cannot write", tmp);
		}
		if (report_write(f, r, dom, &m) < 0 || fsync(fd) < 0) {
			unlink(tmp);
			temp("cannot write", tmp);
		}
		if (fclose(f) == EOF || rename(tmp, file) < 0) {
			unlink(tmp);
			temp("cannot write", file);
		}
		if (lookup) {
			int k = rua_lookup(dom, rua, sizeof rua);
			if (k < 0) {
				fprintf(stderr, "tlsrpt-report: _smtp._tls.%s: temporary DNS failure\n", dom);
				rc = EXIT_TEMP;
			}
			printf("%s\t%s\t%s\n", dom, file, k > 0 ? rua : "");
		} else {
			printf("%s\t%s\n", dom, file);
		}
	}
	report_free(r);
	free(line);
	if (fflush(stdout) == EOF)
		return EXIT_TEMP;
	return rc;
}
