#!/bin/sh
# demo.sh -- show libmailtls working: make a throwaway certificate, start
# examples/tls-hello on 127.0.0.1 with it, talk to it with
# `openssl s_client -brief`, and stop it again.  Then, when they are built,
# the same with examples/tcpserver-ssl running examples/smtp-hello (SMTP over
# implicit TLS, as qmail-smtpd on port 465) and swaks as the mail client.
#
# Usage: tools/demo.sh [ build-dir ]     (default: build)
# Needs a build tree with tls-hello built
# (cmake --build build --target tls-hello tcpserver-ssl smtp-hello) and the
# openssl command (swaks for the second part).  Exit codes: 0 shown
# working; 1 the demo failed; 100 usage; 111 missing program or system
# failure.
set -eu

prog=demo.sh
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
[ $# -le 1 ] || { echo "$prog: usage: tools/demo.sh [ build-dir ]" >&2; exit 100; }

hello=$build/examples/tls-hello/tls-hello
if [ ! -x "$hello" ]; then
	echo "$prog: fatal: $hello is missing: run cmake -S . -B build && cmake --build build --target tls-hello" >&2
	exit 111
fi
command -v openssl >/dev/null || { echo "$prog: fatal: the openssl command is missing (apt-get install openssl)" >&2; exit 111; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mailtls-demo.XXXXXX")
pid=
stop() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || :
		wait "$pid" 2>/dev/null || :
	fi
	pid=
}
cleanup() {
	stop
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 111' HUP INT TERM

# wait_port FILE SED-SCRIPT ERRFILE NAME: the port the server (pid $pid) prints,
# read from FILE with SED-SCRIPT within 10 s; exits 111 if it never shows.
wait_port() {
	port=
	i=0
	while [ $i -lt 100 ]; do
		port=$(sed -n "$2" "$1")
		[ -n "$port" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	cat "$3" >&2
	echo "$prog: fatal: $4 did not start" >&2
	exit 111
}

echo "== 1. a throwaway certificate for localhost (openssl req, in $tmp)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>"$tmp/req.err" ||
	{ cat "$tmp/req.err" >&2; echo "$prog: fatal: unable to make a certificate" >&2; exit 111; }
openssl x509 -in "$tmp/cert.pem" -noout -subject -fingerprint -sha256

echo
echo "== 2. tls-hello serving TLS on 127.0.0.1 (port chosen by the kernel)"
"$hello" -b 127.0.0.1 -p 0 -t 20 "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/server.out" 2>"$tmp/server.err" &
pid=$!
wait_port "$tmp/server.out" 's/^tls-hello: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$tmp/server.err" tls-hello
echo "tls-hello (pid $pid) listens on 127.0.0.1:$port"

echo
echo "== 3. openssl s_client -brief -connect 127.0.0.1:$port (verifying the certificate and the name)"
printf 'hello, world\nQUIT\n' |
	timeout 20 openssl s_client -brief -ign_eof -connect "127.0.0.1:$port" -servername localhost \
		-CAfile "$tmp/cert.pem" -verify_hostname localhost -verify_return_error \
		>"$tmp/client.out" 2>"$tmp/client.err" || :
cat "$tmp/client.err"
echo "-- what the server said:"
cat "$tmp/client.out"

echo
echo "== 4. stopping tls-hello (kill $pid)"
stop
echo "-- its log:"
cat "$tmp/server.err"

echo
if grep -q '^Verification: OK' "$tmp/client.err" && grep -q '^hello from tls-hello' "$tmp/client.out" &&
	grep -q '^echo: hello, world' "$tmp/client.out" && grep -q '^bye' "$tmp/client.out"; then
	echo "$prog: ok: handshake, greeting, echo and close worked"
else
	echo "$prog: FAILED: the conversation above is not what tls-hello should say" >&2
	exit 1
fi

# Part two: the flagship, tcpserver-ssl, in front of an SMTP program.
tss=$build/examples/tcpserver-ssl/tcpserver-ssl
smtp=$build/examples/smtp-hello/smtp-hello
if [ ! -x "$tss" ] || [ ! -x "$smtp" ] || ! command -v swaks >/dev/null; then
	echo "$prog: note: tcpserver-ssl, smtp-hello or swaks missing: the SMTPS part is skipped"
	exit 0
fi
echo
echo "== 5. tcpserver-ssl running smtp-hello: SMTP over TLS (port 465 style), key and chain in one PEM"
cat "$tmp/key.pem" "$tmp/cert.pem" >"$tmp/combined.pem"
"$tss" -1 -v -H -R -l0 -T 20 -n "$tmp/combined.pem" 127.0.0.1 0 "$smtp" mail.demo.example \
	>"$tmp/tss.out" 2>"$tmp/tss.err" &
pid=$!
wait_port "$tmp/tss.out" '1s/^\([0-9][0-9]*\)$/\1/p' "$tmp/tss.err" tcpserver-ssl
echo "tcpserver-ssl (pid $pid) listens on 127.0.0.1:$port"
echo
echo "== 6. swaks --tls-on-connect --tls-verify: a message through it"
timeout 30 swaks --server 127.0.0.1 --port "$port" --tls-on-connect --tls-verify --tls-ca-path "$tmp/cert.pem" \
	--tls-sni localhost --ehlo client.demo.example --from demo@demo.example \
	--to postmaster@mail.demo.example --hide-informational >"$tmp/swaks.out" 2>&1 || :
cat "$tmp/swaks.out"

echo
echo "== 7. stopping tcpserver-ssl (kill $pid)"
stop
echo "-- its log:"
cat "$tmp/tss.err"

echo
if grep -q '^<~  220 .*TLSv1' "$tmp/swaks.out" && grep -q '^<~  250 .*discarded' "$tmp/swaks.out" &&
	grep -q '^<~  221 ' "$tmp/swaks.out" && grep -q '^tcpserver-ssl: tls ' "$tmp/tss.err"; then
	echo "$prog: ok: SMTP over TLS through tcpserver-ssl worked"
	exit 0
fi
echo "$prog: FAILED: the SMTP conversation above is not what smtp-hello should say" >&2
exit 1
