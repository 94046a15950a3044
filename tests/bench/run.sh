#!/bin/sh
# run.sh -- run libmailtls's benchmarks and, in the same run, `openssl speed`
# for reference, then print a summary table.  Builds nothing.
#
# usage: tests/bench/run.sh [--quick] [--no-pin] [--size SIZE] [--seconds S] [BUILD_DIR]
#
#   BUILD_DIR   a configured and built tree (default ./build); the programs
#               are BUILD_DIR/tests/bench/bench_{handshake,relay,primitives}
#   --quick     smoke run (a few handshakes, 4 MiB relayed, openssl speed
#               1 s per op at 16 KiB only): proves the benchmarks work,
#               measures nothing worth quoting; under 20 s
#   --no-pin    do not pin processes to CPUs
#   --size      bytes each way through the relay (default 1G)
#   --seconds   seconds per handshake case (default 3)
#
# Pinning (when there are 2 CPUs or more and --no-pin is not given): the
# single-threaded measurements (memory handshakes, primitives, openssl
# speed) run on CPU 1; the socketpair handshakes run twice, client and
# server both on CPU 1 ("sock") and client on CPU 0, server on CPU 1
# ("sock2"); the relay runs twice, its three processes all on CPU 1
# ("cpu1") and unpinned, where the scheduler puts them ("cpus").  The
# programs pin themselves (sched_setaffinity); openssl speed is started
# under taskset.  Full runs relay each mode 3 times and report medians.
# bench_primitives runs first and last, to show how much the machine's
# speed drifted during the run (it does, on a VM); the summary uses the mean.
set -eu

quick=0
pin=1
size=1G
secs=3
build=
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--no-pin) pin=0 ;;
	--size) size=$2; shift ;;
	--seconds) secs=$2; shift ;;
	-h|--help) sed -n '2,25p' "$0"; exit 0 ;;
	-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	*) build=$1 ;;
	esac
	shift
done
[ -n "$build" ] || build=./build
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
bin=$build/tests/bench
python=${MAILTLS_PYTHON:-/usr/bin/python3}
for p in bench_handshake bench_relay bench_primitives; do
	if [ ! -x "$bin/$p" ]; then
		echo "run.sh: $bin/$p is missing: build first (cmake --build $build)" >&2
		exit 1
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mailtls-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
"$python" "$top/tests/pki/mkpki.py" "$tmp/pki"

ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
if [ "$pin" = 1 ] && [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
	one="-C 1"; sock1="-C 1 -S 1"; sock2="-C 0 -S 1"; rel1="-C 1 -R 1 -P 1"; ts="taskset -c 1"
	pinning="yes"
else
	one=""; ts=""
	pinning="no"
fi

if [ "$quick" = 1 ]; then
	hs_args="-n 20 -w 2"; size=4M; reps=1; prim_t=0.05; ossl_secs=1; ossl_bytes="-bytes 16384"
else
	hs_args="-t $secs -w 50"; reps=3; prim_t=1; ossl_secs=3; ossl_bytes=""
fi
out=$tmp/results.txt
: >"$out"
# Other work on the machine spoils the numbers: say how busy it was.
load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'; }
stat0=$(grep '^cpu ' /proc/stat 2>/dev/null || true)

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
echo "== libmailtls benchmarks: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); $ncpu CPUs ($cpu); pinned: $pinning"
echo "== $(uname -srm); commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?'); load average at start $(load)"
# The primitives run first and last: on a VM the CPU's speed drifts, and
# the two runs show by how much.  The summary uses their mean.
echo "== bench_primitives, first (BoringSSL, the libcrypto libmailtls uses)"
# shellcheck disable=SC2086
"$bin/bench_primitives" -t "$prim_t" $one | tee "$tmp/prim0.txt"
sed 's/^RESULT prim\./RESULT prim0./' "$tmp/prim0.txt" >>"$out"
echo "== bench_handshake"
# Memory: one thread.  Socketpair: client and server processes, on one CPU
# ("sock") and on two ("sock2"; unpinned with --no-pin).
# shellcheck disable=SC2086
"$bin/bench_handshake" -p "$tmp/pki" $hs_args $one -m mem,mem-resume | tee -a "$out"
if [ "$pinning" = yes ]; then
	# shellcheck disable=SC2086
	"$bin/bench_handshake" -p "$tmp/pki" $hs_args $sock1 -m sock,sock-resume | tee -a "$out"
	# shellcheck disable=SC2086
	"$bin/bench_handshake" -p "$tmp/pki" $hs_args $sock2 -l sock2 -m sock,sock-resume | tee -a "$out"
else
	# shellcheck disable=SC2086
	"$bin/bench_handshake" -p "$tmp/pki" $hs_args -l sockx -m sock,sock-resume | tee -a "$out"
fi
echo "== bench_relay"
# On one CPU (all three processes on CPU 1), then unpinned on all CPUs.
if [ "$pinning" = yes ]; then
	# shellcheck disable=SC2086
	"$bin/bench_relay" -p "$tmp/pki" -s "$size" -r "$reps" $rel1 -l cpu1 -m up,down,both | tee -a "$out"
fi
"$bin/bench_relay" -p "$tmp/pki" -s "$size" -r "$reps" -l cpus -m up,down,both | tee -a "$out"
echo "== bench_primitives, again"
# shellcheck disable=SC2086
"$bin/bench_primitives" -t "$prim_t" $one | tee -a "$out"

echo "== openssl speed ($(openssl version 2>/dev/null || echo 'not installed'))"
ossl() {
	# openssl speed ARGS...: keeps its table, prints it, records RESULT lines.
	# shellcheck disable=SC2086
	if $ts openssl speed "$@" >"$tmp/ossl.out" 2>"$tmp/ossl.err"; then
		grep -v -e '^CPUINFO' -e '^compiler' -e '^built on' -e '^options' -e '^version' -e '^Doing' \
			"$tmp/ossl.out" | sed 's/^/  /'
		return 0
	fi
	echo "  openssl speed $*: failed ($(head -n 1 "$tmp/ossl.err"))"
	return 1
}
if command -v openssl >/dev/null 2>&1; then
	if ossl -seconds "$ossl_secs" ecdsap256 rsa2048; then
		awk '/ecdsa \(nistp256\)/ { print "RESULT ossl.ecdsa-p256 sign=" $(NF-1) " verify=" $NF }
		     /^rsa 2048 bits/     { print "RESULT ossl.rsa2048 sign=" $(NF-1) " verify=" $NF }' \
			"$tmp/ossl.out" >>"$out"
	fi
	# shellcheck disable=SC2086
	for c in aes-128-gcm chacha20-poly1305; do
		if ossl -seconds "$ossl_secs" $ossl_bytes -evp "$c"; then
			# The last column is 16384-byte blocks, in 1000s of bytes per second.
			awk -v c="$c" 'tolower($1) == c { v = $NF; sub(/k$/, "", v); print "RESULT ossl." c " mbps=" v / 1000 }' \
				"$tmp/ossl.out" >>"$out"
		fi
	done
else
	echo "  openssl is not installed: no reference numbers"
fi

stat1=$(grep '^cpu ' /proc/stat 2>/dev/null || true)
echo
echo "== load average at the end $(load)$(printf '%s\n%s\n' "$stat0" "$stat1" | awk '
	NR == 1 { for (i = 2; i <= NF; i++) a[i] = $i }
	NR == 2 { for (i = 2; i <= NF; i++) { d = $i - a[i]; t += d; if (i == 9) st = d; if (i == 5) id = d }
		  if (t > 0) printf "; during the run: CPUs %.0f%% idle, %.1f%% stolen by the hypervisor", 100 * id / t, 100 * st / t }')"
"$python" - "$out" "$size" "$ncpu" <<'EOF'
import re, sys
res = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        parts = line.split()
        res[parts[1]] = {k: float(v) for k, v in (p.split("=", 1) for p in parts[2:])}

def g(name, key, fmt="%.0f"):
    v = res.get(name, {}).get(key)
    return fmt % v if v is not None else "-"

def r(name, key="rate"):
    return res.get(name, {}).get(key)

# The primitives, run first (prim0.*) and last (prim.*): keep both, use the mean.
drift = {}
for n in [k for k in res if k.startswith("prim.")]:
    first = res.get("prim0." + n[5:], {}).get("rate")
    if first:
        last = res[n]["rate"]
        drift[n[5:]] = 100 * (last - first) / first
        res[n]["first"], res[n]["last"] = first, last
        res[n]["rate"] = (first + last) / 2

print("== summary")
print("%-38s %12s %12s" % ("TLS 1.3 handshakes/s (one connection)", "ECDSA P-256", "RSA-2048"))
rows = [("full, memory transport (1 thread)", "mem", "full"),
        ("full, socketpair, 1 CPU", "sock", "full"),
        ("full, socketpair, 2 CPUs", "sock2", "full"),
        ("full, socketpair, unpinned", "sockx", "full"),
        ("resumed, memory transport", "mem", "resumed"),
        ("resumed, socketpair, 1 CPU", "sock", "resumed"),
        ("resumed, socketpair, 2 CPUs", "sock2", "resumed"),
        ("resumed, socketpair, unpinned", "sockx", "resumed")]
rows = [x for x in rows if "hs.%s.ec.%s" % (x[1], x[2]) in res or "hs.%s.rsa.%s" % (x[1], x[2]) in res]
for label, tr, kind in rows:
    print("%-38s %12s %12s" % ("  " + label, g("hs.%s.ec.%s" % (tr, kind), "rate"),
                               g("hs.%s.rsa.%s" % (tr, kind), "rate")))
print("%-38s %12s %12s" % ("CPU us per handshake, client/server:", "", ""))
for label, tr, kind in rows:
    cells = []
    for k in ("ec", "rsa"):
        n = "hs.%s.%s.%s" % (tr, k, kind)
        cells.append("%s/%s" % (g(n, "client_us"), g(n, "server_us")))
    print("%-38s %12s %12s" % ("  " + label, cells[0], cells[1]))

# Crypto bound from BoringSSL's own primitives: what the handshake must
# compute, one side after the other (the memory case) or per side.
ev, es, rs_, rv, x = (r("prim.ecdsa-p256.verify"), r("prim.ecdsa-p256.sign"),
                      r("prim.rsa2048-pss.sign"), r("prim.rsa2048-pss.verify"),
                      r("prim.x25519.keygen+derive"))
if all((ev, es, rs_, rv, x)):
    # Client: chain (2 ECDSA verifies: the intermediate and the leaf are
    # signed by ECDSA P-256 CAs) + CertificateVerify + X25519; server:
    # signature + X25519.  Resumed: the client re-verifies the chain.
    cl_ec, sv_ec = 3 / ev + 1 / x, 1 / es + 1 / x
    cl_rsa, sv_rsa = 2 / ev + 1 / rv + 1 / x, 1 / rs_ + 1 / x
    cl_res, sv_res = 2 / ev + 1 / x, 1 / x
    print("%-38s %12s %12s" % ("crypto-bound (BoringSSL primitives):", "", ""))
    print("%-38s %12.0f %12.0f" % ("  full handshakes/s, sides in turn", 1 / (cl_ec + sv_ec), 1 / (cl_rsa + sv_rsa)))
    print("%-38s %12.0f %12.0f" % ("  resumed handshakes/s, sides in turn", 1 / (cl_res + sv_res), 1 / (cl_res + sv_res)))
    print("%-38s %12s %12s" % ("  crypto us, client/server (full)", "%.0f/%.0f" % (cl_ec * 1e6, sv_ec * 1e6),
                               "%.0f/%.0f" % (cl_rsa * 1e6, sv_rsa * 1e6)))
    print("%-38s %12.0f %12.0f" % ("  full handshakes/s, server side only", 1 / sv_ec, 1 / sv_rsa))

print()
print("%-38s %9s %9s %9s %12s" % ("relay MB/s (%s each way, median)" % sys.argv[2], "up", "down", "total",
                                   "relay-bound"))
for lab, ltext in (("cpu1", "all on 1 CPU"), ("cpus", "unpinned, %s CPUs" % sys.argv[3])):
    for m in ("up", "down", "both"):
        n = "relay.%s.%s" % (lab, m)
        if n not in res:
            continue
        print("%-38s %9s %9s %9s %12s" % ("  %s, %s" % (m, ltext), g(n, "up_mbps") if m != "down" else "",
                                         g(n, "down_mbps") if m != "up" else "", g(n, "total_mbps"),
                                         g(n, "relay_bound_mbps")))
print("%-38s" % "relay CPU s: relay (sys) / client / plaintext program")
for lab, ltext in (("cpu1", "all on 1 CPU"), ("cpus", "unpinned, %s CPUs" % sys.argv[3])):
    for m in ("up", "down", "both"):
        n = "relay.%s.%s" % (lab, m)
        if n in res:
            print("%-38s %s" % ("  %s, %s" % (m, ltext), "%.2f (%.2f) / %.2f / %.2f" % (
                res[n]["relay_cpu"], res[n]["relay_sys"], res[n]["client_cpu"], res[n]["plain_cpu"])))

print()
print("%-38s %14s %14s" % ("reference, same machine, same run", "BoringSSL", "OpenSSL speed"))
rows = [("ECDSA P-256 sign/s", "prim.ecdsa-p256.sign", "rate", "ossl.ecdsa-p256", "sign"),
        ("ECDSA P-256 verify/s", "prim.ecdsa-p256.verify", "rate", "ossl.ecdsa-p256", "verify"),
        ("RSA-2048 sign/s", "prim.rsa2048-pss.sign", "rate", "ossl.rsa2048", "sign"),
        ("RSA-2048 verify/s", "prim.rsa2048-pss.verify", "rate", "ossl.rsa2048", "verify"),
        ("X25519 keygen+derive/s", "prim.x25519.keygen+derive", "rate", None, None),
        ("AES-128-GCM MB/s (16 KiB)", "prim.aes-128-gcm.seal-16k", "rate", "ossl.aes-128-gcm", "mbps"),
        ("ChaCha20-Poly1305 MB/s (16 KiB)", "prim.chacha20-poly1305.seal-16k", "rate",
         "ossl.chacha20-poly1305", "mbps")]
for label, bn, bk, on, ok in rows:
    print("%-38s %14s %14s" % ("  " + label, g(bn, bk), g(on, ok) if on else "-"))
if drift:
    print("BoringSSL: mean of a run before and after the rest; from the first to the second:")
    print("  " + ", ".join("%s %+.0f%%" % (k, v) for k, v in sorted(drift.items())))
EOF
