#!/bin/sh
# run.sh -- tcpserver-ssl beside plain tcpserver, stunnel, hitch and socat,
# in one run, on loopback.  A benchmark: it asserts nothing about speed; it
# exits non-zero only when something does not work (a server that does not
# start, a connection that fails, bytes lost).
#
# usage: tests/bench/servers/run.sh [--quick] [--install] [--no-pin] [--only LIST]
#                                   [--wait-quiet SECS] [--tries N] [BUILD_DIR]
#
#   BUILD_DIR   a built tree (default ./build): BUILD_DIR/libmailtls/libmailtls.so
#               and BUILD_DIR/examples/tcpserver-ssl/tcpserver-ssl; best Release
#   --quick     smoke run, under a minute: proves it all works, numbers meaningless
#   --install   apt-get install what is missing (stunnel4 hitch socat ucspi-tcp)
#   --no-pin    do not pin (default: servers and their children on CPU 0,
#               the load generator on CPU 1, with taskset)
#   --only LIST comma-separated subset of: plain,stunnel,hitch,socat,tss,floor
#   --wait-quiet SECS  before a full run, wait at most SECS (default 300) for
#               the machine to be idle (both CPUs under 5 % busy for a second)
#   --tries N   run a measurement at most N times (default 3) while other work
#               on the machine took more than 5 % of a CPU during it, each
#               after waiting (at most 30 s) for a quiet second; 1: no waits
#
# Per server, one after another, the same program (bprog) per connection:
#   rate   connections/s (TLS: full TLS 1.3 handshakes/s), 64 clients at once;
#          each connection: connect, handshake, read the greeting, close
#   lat    one client, N connections in a row: median connect+handshake+greeting
#   up/down  1 GiB through the wrapper, median of 3 (MB/s = 10^6 B/s)
#   rtt    64-byte round trips through an echoing program: median, p99
#   mem    200 idle connections held open: PSS (smaps_rollup) summed over the
#          wrapper's processes, minus the same sum before, / 200; the
#          per-connection program (bprog) is not counted
# Then rate and lat again with bprog built as an ordinary glibc program, and
# one-client latency against "floor", libmailtls's handshake in one process.
# Each measurement also reports the server tree's CPU time (server_cpu) and
# the CPU time other processes used meanwhile (foreign_cpu).
# Builds bload (the client, on mailtls.h only) and bprog with cc into a
# temporary directory, makes a throwaway ECDSA P-256 certificate there, runs
# every server in the foreground from its own configuration there, and stops
# each by its pid.  Everything is bounded in count and time.
set -eu

quick=0
quiet_wait=300
tries=3
pin=1
install=0
only=plain,stunnel,hitch,socat,tss,floor
build=
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--no-pin) pin=0 ;;
	--install) install=1 ;;
	--only) only=$2; shift ;;
	--wait-quiet) quiet_wait=$2; shift ;;
	--tries) tries=$2; shift ;;
	-h|--help) sed -n '2,39p' "$0"; exit 0 ;;
	-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	*) build=$1 ;;
	esac
	shift
done
[ -n "$build" ] || build=./build
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
build=$(cd "$build" && pwd)
tss=$build/examples/tcpserver-ssl/tcpserver-ssl
# The sources the build was made from (their mailtls.h for bload).
src=$(sed -n 's/^mailtls_SOURCE_DIR:STATIC=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
[ -n "$src" ] && [ -e "$src/libmailtls/include/mailtls.h" ] || src=$top
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
lib=$build/libmailtls
python=${MAILTLS_PYTHON:-/usr/bin/python3}
if [ ! -x "$tss" ] || [ ! -e "$lib/libmailtls.so" ]; then
	echo "run.sh: $tss or $lib/libmailtls.so is missing: build first" \
		"(cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release && cmake --build $build)" >&2
	exit 1
fi

# The peers, from Debian's packages.
stunnel=$(command -v stunnel4 || command -v stunnel || true)
hitch=$(command -v hitch || true)
[ -n "$hitch" ] || { [ -x /usr/sbin/hitch ] && hitch=/usr/sbin/hitch; } || true
socat=$(command -v socat || true)
tcpserver=$(command -v tcpserver || true)
if [ "$install" = 1 ] && { [ -z "$stunnel" ] || [ -z "$hitch" ] || [ -z "$socat" ] || [ -z "$tcpserver" ]; }; then
	apt-get install -y stunnel4 hitch socat ucspi-tcp >/dev/null
	stunnel=$(command -v stunnel4 || command -v stunnel || true)
	hitch=$(command -v hitch || echo /usr/sbin/hitch)
	socat=$(command -v socat || true)
	tcpserver=$(command -v tcpserver || true)
fi
if [ -z "$tcpserver" ]; then
	echo "run.sh: tcpserver (Debian ucspi-tcp) is missing: it is the baseline (--install, or apt-get install ucspi-tcp)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mailtls-servers.XXXXXX")
pids=
cleanup() {
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# bprog twice: without a C library (the main runs) and as a glibc program.
cc -O2 -Wall -DNOLIBC -ffreestanding -fno-stack-protector -fno-pie -no-pie -static -nostdlib \
	-o "$tmp/bprog" "$here/bprog.c"
cc -O2 -Wall -o "$tmp/bprog-libc" "$here/bprog.c"
bprog_libc=$tmp/bprog-libc
cc -O2 -Wall -D_GNU_SOURCE -o "$tmp/bload" "$here/bload.c" -I"$src/libmailtls/include" \
	-L"$lib" -lmailtls -Wl,-rpath,"$lib"
bprog=$tmp/bprog
bload=$tmp/bload

# A throwaway ECDSA P-256 certificate; combined.pem = key + certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=localhost -addext subjectAltName=DNS:localhost \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
cat "$tmp/key.pem" "$tmp/cert.pem" >"$tmp/combined.pem"
chmod 600 "$tmp/key.pem" "$tmp/combined.pem"

ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
if [ "$pin" = 1 ] && [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
	S="taskset -c 0"; C="taskset -c 1"; pinning="servers CPU 0, client CPU 1"
else
	S=""; C=""; pinning="none"
fi

if [ "$quick" = 1 ]; then
	rate_t=1; rate_w=0.3; lat_n=20; bulk=16M; reps=1; rtt_n=300; hold_n=20
else
	rate_t=10; rate_w=2; lat_n=500; bulk=1G; reps=3; rtt_n=20000; hold_n=200
fi

# Ports: a free block of eight.
# Below the ephemeral range, where the clients' own sockets (thousands in
# TIME_WAIT after a rate run) could hold the port.
low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$low" -gt 12000 ] || low=32768
base=$((10000 + $$ % (low - 10200)))
i=0
while :; do
	ok=1
	for k in 0 1 2 3 4 5 6 7; do
		"$bload" free -p $((base + k)) || { ok=0; break; }
	done
	[ "$ok" = 1 ] && break
	i=$((i + 1)); base=$((base + 97))
	[ $i -lt 20 ] || { echo "run.sh: no free ports" >&2; exit 1; }
done

out=$tmp/results.txt
: >"$out"
load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'; }
stat0=$(grep '^cpu ' /proc/stat)
cpuname=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "== tcpserver-ssl beside tcpserver, stunnel, hitch, socat: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "== $(uname -srm); $ncpu CPUs ($cpuname); pinning: $pinning"
echo "== build $build (${btype:-?}) from $src, commit $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '? (not a git tree)')"
dirty=$(git -C "$src" status --porcelain -- libmailtls examples/tcpserver-ssl 2>/dev/null | wc -l)
[ "$dirty" = 0 ] || echo "== $src has $dirty changed files in libmailtls/ or examples/tcpserver-ssl/ (not committed)"
echo "== load average at start $(load)"
echo "== $($stunnel -version 2>&1 | grep -m 1 '^stunnel ' || true) | hitch $($hitch --version 2>&1 | sed 's/^hitch //' || true) | $($socat -V 2>/dev/null | sed -n 's/^socat version \([^ ]*\).*/socat \1/p') | $(openssl version 2>/dev/null)"

# cpu_busy FILE: the per-CPU busy fractions since the /proc/stat lines in FILE.
cpu_snap() { grep '^cpu[0-9]' /proc/stat >"$1"; }
cpu_busy() {
	grep '^cpu[0-9]' /proc/stat | awk -v f="$1" '
		BEGIN { while ((getline l < f) > 0) { split(l, a, " "); for (i = 2; i <= 9; i++) o[a[1], i] = a[i] } }
		$1 == "cpu0" || $1 == "cpu1" { t = 0; for (i = 2; i <= 9; i++) t += $i - o[$1, i]
			idle = ($5 - o[$1, 5]) + ($6 - o[$1, 6]); if (t > 0) printf " %s_busy=%.2f", $1, 1 - idle / t }'
}

# background: how busy CPU 0 and 1 were over one second with our servers
# idle ("cpu0_busy=0.01 cpu1_busy=0.00"): other work on the machine spoils
# the numbers, so it is measured and printed before every server.
background() {
	cpu_snap "$tmp/cpuq"
	sleep 1
	cpu_busy "$tmp/cpuq"
}
# wait_quiet SECS: waits (at most SECS) for a second with both CPUs under 5 % busy.
wait_quiet() {
	w_end=$(($(date +%s) + $1))
	while :; do
		b=$(background)
		echo "$b" | awk '{ for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[2] > 0.05) exit 1 } }' && return 0
		[ "$(date +%s)" -lt "$w_end" ] || { echo "== WARNING: the machine is busy with other work ($b): the numbers will be off"; return 0; }
		sleep 4
	done
}

# snap FILE: "pid starttime ticks" for every process that is neither this
# script's nor the kernel's: ticks = utime + stime + cutime + cstime (a
# short-lived process's time shows in its parent's cutime once reaped).
snap() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v me=$$ '
		{ i = length($0); while (i > 0 && substr($0, i, 1) != ")") i--
		  split(substr($0, i + 2), f, " "); p = $1 + 0
		  pp[p] = f[2] + 0; t[p] = f[12] + f[13] + f[14] + f[15]; st[p] = f[20] }
		END { for (p in pp) { q = p + 0; n = 0; m = 0
			while (q > 2 && n < 200) { if (q == me) { m = 1; break }; q = pp[q]; n++ }
			if (!m && q != 2 && p != 2) print p, st[p], t[p] } }' >"$1"
}
# foreign FILE0 FILE1 SECS: the CPUs' worth of time other work took between
# two snaps: the sum of the second minus the sum of the first (the time of a
# process that ended in between moved to its reaper's cutime).
foreign() {
	awk -v secs="$3" -v hz="$(getconf CLK_TCK)" '
		NR == FNR { s -= $3; next }
		{ s += $3 }
		END { if (s < 0) s = 0; printf "%.2f", (secs > 0 ? s / hz / secs : 0) }' "$1" "$2"
}
# clean CMD...: runs a bload measurement; in a full run it first waits (at
# most 30 s) for a quiet second, and runs it again, up to 3 times in all,
# while other work on the machine took more than 5 % of a CPU during it.
# Prints its RESULT line with the CPUs' busy fractions and foreign_cpu=.
clean() {
	a=0
	while :; do
		a=$((a + 1))
		[ "$quick" = 1 ] || [ "$tries" -le 1 ] || wait_quiet 30 >/dev/null
		cpu_snap "$tmp/cpu"
		snap "$tmp/f0"
		# shellcheck disable=SC2086
		s0=$(cpu_of $roots)
		c0=$(date +%s.%N)
		res=$("$@")
		c1=$(date +%s.%N)
		sleep 0.3   # the last connections' processes end and are reaped
		# shellcheck disable=SC2086
		s1=$(cpu_of $roots)
		snap "$tmp/f1"
		busy=$(cpu_busy "$tmp/cpu")
		fr=$(foreign "$tmp/f0" "$tmp/f1" "$(echo "$c0 $c1" | awk '{ print $2 - $1 }')")
		if [ "$quick" = 1 ] || [ $a -ge "$tries" ] || echo "$fr" | awk '{ exit !($1 < 0.05) }'; then
			break
		fi
		echo "  (other work took $fr of a CPU during: $res; again)" >&2
	done
	echo "$res$busy foreign_cpu=$fr server_cpu=$(echo "$s0 $s1" | awk '{ printf "%.2f", $2 - $1 }') tries=$a" | tee -a "$out"
}

# tree ROOTS...: the pids of ROOTS and all their descendants, except the
# per-connection program (bprog).
tree() {
	ps -e -o pid=,ppid=,comm= | awk -v roots="$*" '
		BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
		{ pp[$1] = $2; cm[$1] = $3 }
		END { do { ch = 0; for (p in pp) if (!(p in keep) && (pp[p] in keep)) { keep[p] = 1; ch = 1 } } while (ch)
		      for (p in keep) if ((p in cm) && cm[p] !~ /^bprog/) print p }'
}
# cpu_of ROOTS...: the CPU seconds the trees of ROOTS have used, the
# per-connection programs included: utime + stime + cutime + cstime of every
# live process (a finished process's time is in its reaper's cutime).
cpu_of() {
	ps -e -o pid=,ppid= | awk -v roots="$*" '
		BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
		{ pp[$1] = $2 }
		END { do { ch = 0; for (p in pp) if (!(p in keep) && (pp[p] in keep)) { keep[p] = 1; ch = 1 } } while (ch)
		      for (p in keep) print "/proc/" p "/stat" }' | xargs cat 2>/dev/null | awk -v hz="$(getconf CLK_TCK)" '
		{ i = length($0); while (i > 0 && substr($0, i, 1) != ")") i--
		  split(substr($0, i + 2), f, " "); s += f[12] + f[13] + f[14] + f[15] }
		END { printf "%.2f", s / hz }'
}
# pss ROOTS...: "KIB NPROC" summed over tree ROOTS.
pss() {
	for p in $(tree "$@"); do
		awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || true
	done | awk '{ s += $1; n++ } END { printf "%d %d\n", s, n }'
}

# start NAME PORT CMD...: starts a server pinned to CPU 0, in the foreground
# of its own, logging to $tmp/NAME.log; waits until PORT accepts.
start() {
	s_name=$1; s_port=$2; shift 2
	# shellcheck disable=SC2086
	$S "$@" >"$tmp/$s_name.log" 2>&1 &
	last=$!
	pids="$pids $last"
	if ! $C "$bload" wait -p "$s_port" -t 10; then
		echo "run.sh: $s_name did not start; its log:" >&2
		sed 's/^/  /' "$tmp/$s_name.log" >&2
		exit 1
	fi
}
# stop ROOTS...: TERM to every process of the trees (by pid), KILL after 5 s.
stop() {
	t=$(tree "$@")
	all="$t $(ps -e -o pid=,ppid=,comm= | awk -v r=" $* " 'index(r, " " $2 " ") && $3 ~ /^bprog/ { print $1 }')"
	for p in $all; do kill -TERM "$p" 2>/dev/null || true; done
	i=0
	while [ $i -lt 50 ]; do
		alive=
		for p in $all; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
		[ -n "$alive" ] || break
		sleep 0.1; i=$((i + 1))
	done
	for p in $alive; do kill -KILL "$p" 2>/dev/null || true; done
	for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# measure LABEL PORT PLAIN ROOTS...: the five measurements against one server.
measure() {
	label=$1; m_port=$2; pl=$3; shift 3
	roots=$*
	P=
	[ "$pl" = 1 ] && P=-P
	echo "== $label"
	echo "RESULT $label background$(background)" | tee -a "$out"
	# Idle connections first, while the server is fresh (memory that later
	# loads leave in its heap would be reused and hide the cost): one
	# connection's one-time set-up, the sum, then hold_n held and the sum.
	# shellcheck disable=SC2086
	$C "$bload" lat -p "$m_port" $P -l warm -n 1 >/dev/null
	sleep 0.5
	before=$(pss $roots)
	# shellcheck disable=SC2086
	$C "$bload" hold -p "$m_port" $P -l "$label" -n $hold_n -c 64 -t 120 >"$tmp/hold.out" 2>"$tmp/hold.err" &
	hp=$!
	: >>"$tmp/hold.out"
	i=0
	while [ $i -lt 600 ] && ! grep -q '^HELD' "$tmp/hold.out" && kill -0 $hp 2>/dev/null; do
		sleep 0.1; i=$((i + 1))
	done
	if ! grep -q "^HELD $hold_n " "$tmp/hold.out"; then
		echo "run.sh: $label: could not hold $hold_n connections:" >&2
		cat "$tmp/hold.out" "$tmp/hold.err" >&2
		kill -TERM $hp 2>/dev/null || true
		exit 1
	fi
	sleep 1
	during=$(pss $roots)
	nprog=$(ps -e -o comm= | grep -c '^bprog' || true)
	kill -TERM $hp 2>/dev/null || true
	wait $hp 2>/dev/null || true
	echo "$before $during" | awk -v l="$label" -v n=$hold_n -v np="$nprog" '{
		printf "RESULT %s mem conns=%d before_kib=%d before_procs=%d held_kib=%d held_procs=%d kib_per_conn=%.1f programs=%d\n",
		    l, n, $1, $2, $3, $4, ($3 - $1) / n, np }' | tee -a "$out"
	sleep 1
	# shellcheck disable=SC2086
	clean $C "$bload" rate -p "$m_port" $P -l "$label" -c 64 -t $rate_t -w $rate_w
	# shellcheck disable=SC2086
	clean $C "$bload" lat -p "$m_port" $P -l "$label" -n $lat_n -t 60
	for m in up down; do
		k=0
		while [ $k -lt $reps ]; do
			# shellcheck disable=SC2086
			clean $C "$bload" $m -p "$m_port" $P -l "$label" -s $bulk
			k=$((k + 1))
		done
	done
	# shellcheck disable=SC2086
	clean $C "$bload" rtt -p "$m_port" $P -l "$label" -n $rtt_n -t 30
}

# measure_exec LABEL PORT PLAIN: rate and latency only, labelled LABEL.libc.
measure_exec() {
	P=
	[ "$3" = 1 ] && P=-P
	echo "== $1, glibc program"
	echo "RESULT $1.libc background$(background)" | tee -a "$out"
	# shellcheck disable=SC2086
	clean $C "$bload" rate -p "$2" $P -l "$1.libc" -c 64 -t $rate_t -w $rate_w
	# shellcheck disable=SC2086
	clean $C "$bload" lat -p "$2" $P -l "$1.libc" -n $lat_n -t 60
	sleep 1
}

# ports N: a port that nothing listens on now, from base + N on (other
# programs on the machine may have taken one since the start).
ports() {
	pp=$((base + $1))
	while ! "$bload" free -p $pp; do pp=$((pp + 10)); done
	echo $pp
}
has() { case ",$only," in *",$1,"*) return 0 ;; esac; return 1; }

# serve NAME PROG: starts server NAME with PROG as the per-connection
# program; sets port (where clients connect), plain (1: no TLS) and roots
# (the pids whose process trees are the wrapper).
serve() {
	plain=0
	case $1 in
	plain)
		# 1. plain tcpserver: the baseline, no TLS.
		port=$(ports 0); plain=1
		start plain "$port" "$tcpserver" -c 400 -b 256 -RHl0 127.0.0.1 "$port" "$2"
		roots=$last ;;
	stunnel)
		# 2. stunnel in inetd-like exec= mode: it forks the program per connection.
		port=$(ports 1)
		cat >"$tmp/stunnel.conf" <<EOF2
foreground = yes
pid =
syslog = no
debug = 3
[bench]
accept = 127.0.0.1:$port
exec = $2
execArgs = bprog
cert = $tmp/cert.pem
key = $tmp/key.pem
sslVersionMin = TLSv1.3
EOF2
		start stunnel "$port" "$stunnel" "$tmp/stunnel.conf"
		roots=$last ;;
	hitch)
		# 3. hitch, a TLS terminator, in front of plain tcpserver.
		port=$(ports 2); q=$(ports 3)
		mkdir -p "$tmp/ocsp"
		cat >"$tmp/hitch.conf" <<EOF2
frontend = "[127.0.0.1]:$port"
backend = "[127.0.0.1]:$q"
pem-file = "$tmp/combined.pem"
workers = 1
daemon = off
log-level = 1
tls-protos = TLSv1.3
backlog = 256
ocsp-dir = "$tmp/ocsp"
user = "nobody"
EOF2
		start hitch-backend "$q" "$tcpserver" -c 400 -b 256 -RHl0 127.0.0.1 "$q" "$2"
		back=$last
		start hitch "$port" "$hitch" --config="$tmp/hitch.conf"
		roots="$last $back" ;;
	socat)
		# 4. socat: a forked child per connection does TLS and runs the program.
		port=$(ports 4)
		start socat "$port" "$socat" \
			"OPENSSL-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork,backlog=256,cert=$tmp/combined.pem,verify=0" \
			"EXEC:$2"
		roots=$last ;;
	tss)
		# 5. tcpserver-ssl.
		port=$(ports 5)
		start tss "$port" "$tss" -c 400 -b 256 -RHl0 -n "$tmp/combined.pem" 127.0.0.1 "$port" "$2"
		roots=$last ;;
	esac
}

[ "$quick" = 1 ] || wait_quiet "$quiet_wait"
for name in plain stunnel hitch socat tss; do
	has $name || continue
	case $name in
	stunnel) [ -n "$stunnel" ] || { echo "== stunnel: not installed (apt-get install stunnel4), skipped"; continue; } ;;
	hitch) [ -n "$hitch" ] || { echo "== hitch: not installed (apt-get install hitch), skipped"; continue; } ;;
	socat) [ -n "$socat" ] || { echo "== socat: not installed (apt-get install socat), skipped"; continue; } ;;
	esac
	serve $name "$bprog"
	# shellcheck disable=SC2086
	measure $name "$port" $plain $roots
	# shellcheck disable=SC2086
	stop $roots
	# The same with the glibc build of the program: connection rate and latency.
	serve $name "$bprog_libc"
	# shellcheck disable=SC2086
	measure_exec $name "$port" $plain
	# shellcheck disable=SC2086
	stop $roots
done

# The floor for one client's latency: libmailtls's handshake alone, in one
# server process (bload serve: no fork, no program, no relay), on CPU 0.
if has floor; then
	port=$(ports 6)
	start floor "$port" "$bload" serve -p "$port" -t 600 "$tmp/combined.pem"
	roots=$last
	echo "== floor: libmailtls handshake in one process"
	# shellcheck disable=SC2086
	clean $C "$bload" lat -p "$port" -l floor -n $lat_n -t 60
	# shellcheck disable=SC2086
	stop $roots
fi

stat1=$(grep '^cpu ' /proc/stat)
echo "== load average at the end $(load)$(printf '%s\n%s\n' "$stat0" "$stat1" | awk '
	NR == 1 { for (i = 2; i <= NF; i++) a[i] = $i }
	NR == 2 { for (i = 2; i <= NF; i++) { d = $i - a[i]; t += d; if (i == 9) st = d }
		  if (t > 0) printf "; %.1f%% of CPU time stolen by the hypervisor during the run", 100 * st / t }')"
for f in "$tmp"/*.log; do
	[ -s "$f" ] || continue
	n=$(wc -l <"$f")
	echo "== $(basename "$f" .log) logged $n lines; the first: $(head -n 1 "$f")"
done

"$python" - "$out" <<'EOF'
import sys, statistics
res = {}
for line in open(sys.argv[1]):
    if not line.startswith("RESULT "):
        continue
    p = line.split()
    kv = {}
    for x in p[3:]:
        k, v = x.split("=", 1)
        try:
            kv[k] = float(v)
        except ValueError:
            kv[k] = v
    res.setdefault((p[1], p[2]), []).append(kv)

names = [n for n in ("plain", "stunnel", "hitch", "socat", "tss") if (n, "rate") in res]
if ("floor", "lat") in res:
    names.append("floor")

def val(n, m, k):
    if k == "per_cpu":
        # per second of server CPU (wrapper and program): connections, or MB
        v = []
        for r in res.get((n, m), []):
            c = r.get("server_cpu")
            w = r.get("all") if m == "rate" else (r.get("bytes", 0) / 1e6 if m in ("up", "down") else None)
            if isinstance(c, float) and c > 0 and isinstance(w, float):
                v.append(w / c)
        return statistics.median(v) if v else None
    v = [r[k] for r in res.get((n, m), []) if isinstance(r.get(k), float)]
    return statistics.median(v) if v else None

# label, result name suffix, measurement, key, format, which way is better, scale
rows = [("conns/s, 64 clients (TLS: full handshakes/s)", "", "rate", "rate", "%.0f", "hi", 1),
        ("  client CPU 1 busy", "", "rate", "cpu1_busy", "%.2f", None, 1),
        ("  server CPU 0 busy", "", "rate", "cpu0_busy", "%.2f", None, 1),
        ("  p50 time per connection under that load, ms", "", "rate", "p50_us", "%.1f", None, 1e-3),
        ("  per second of server CPU (wrapper + program)", "", "rate", "per_cpu", "%.0f", "hi", 1),
        ("1 client: connect+handshake+greeting p50, us", "", "lat", "p50_us", "%.0f", "lo", 1),
        ("  p99, us", "", "lat", "p99_us", "%.0f", None, 1),
        ("same with the glibc program: conns/s", ".libc", "rate", "rate", "%.0f", "hi", 1),
        ("  per second of server CPU", ".libc", "rate", "per_cpu", "%.0f", "hi", 1),
        ("  1 client p50, us", ".libc", "lat", "p50_us", "%.0f", "lo", 1),
        ("upload MB/s (median)", "", "up", "mbps", "%.0f", "hi", 1),
        ("  MB per second of server CPU", "", "up", "per_cpu", "%.0f", "hi", 1),
        ("download MB/s (median)", "", "down", "mbps", "%.0f", "hi", 1),
        ("  MB per second of server CPU", "", "down", "per_cpu", "%.0f", "hi", 1),
        ("64-byte round trip p50, us", "", "rtt", "p50_us", "%.1f", "lo", 1),
        ("  p99, us", "", "rtt", "p99_us", "%.1f", "lo", 1),
        ("PSS per idle connection, KiB (wrapper only)", "", "mem", "kib_per_conn", "%.1f", "lo", 1),
        ("background CPU 0 / 1 busy before the server", "", "background", None, None, None, 1),
        ("other work during the measurements, CPUs (max)", "", "foreign", None, None, None, 1)]
w = 48
print()
print("== summary (tss = tcpserver-ssl; floor = libmailtls's handshake in one process, no fork;")
print("   ratios: tss / plain tcpserver, tss / the best TLS peer)")
print("%-*s" % (w, "") + "".join("%11s" % n for n in names) + "%11s%10s" % ("tss/plain", "tss/peer"))
for label, suf, m, k, fmt, better, scale in rows:
    if m == "foreign":
        cells = []
        for n in names:
            v = [r["foreign_cpu"] for (nn, mm), rs in res.items() if nn in (n, n + ".libc")
                 for r in rs if isinstance(r.get("foreign_cpu"), float)]
            cells.append("%.2f" % max(v) if v else "-")
        print("%-*s" % (w, label) + "".join("%11s" % c for c in cells))
        continue
    if k is None:
        cells = []
        for n in names:
            a, b = val(n, m, "cpu0_busy"), val(n, m, "cpu1_busy")
            cells.append("%.2f/%.2f" % (a, b) if a is not None and b is not None else "-")
        print("%-*s" % (w, label) + "".join("%11s" % c for c in cells))
        continue
    vals = {}
    for n in names:
        v = val(n + suf, m, k)
        vals[n] = v * scale if v is not None else None
    line = "%-*s" % (w, label) + "".join("%11s" % (fmt % vals[n] if vals[n] is not None else "-") for n in names)
    t, pl = vals.get("tss"), vals.get("plain")
    peers = [vals[n] for n in ("stunnel", "hitch", "socat") if vals.get(n) is not None]
    r1 = r2 = ""
    if better and t is not None and pl:
        r1 = "%.2fx" % (t / pl)
    if better and t is not None and peers:
        best = max(peers) if better == "hi" else min(peers)
        if best:
            r2 = "%.2fx" % (t / best)
    print(line + "%11s%10s" % (r1, r2))
print("cipher: " + ", ".join("%s %s" % (n, res.get((n, "rtt"), [{}])[0].get("cipher", "-")) for n in names))
EOF
