#!/bin/sh
# deps.sh -- install, with apt-get, everything libmailtls needs to build, to
# run its demo and to run all its tests, on Debian 12.  Run as root.  Safe
# to run again: when every package is already installed it changes nothing
# and needs no network.
#
# Before installing the servers the tests talk to (postfix, dovecot, haproxy) it
# installs /usr/sbin/policy-rc.d answering 101 ("action forbidden"), so that
# installing them starts no daemon (the tests start their own instances),
# unless a policy-rc.d is already there; and it preseeds postfix with "No
# configuration".  Remove /usr/sbin/policy-rc.d afterwards if this machine
# should start services on package installation again.
#
# Exit codes: 0 done; 111 not root or apt-get failed.
set -eu

prog=deps.sh
# Installed without Recommends, so what the tests need of those is named:
# libc6-dev (gcc's C library headers), libnet-ssleay-perl (swaks --tls).
# Also: dnsmasq-base (the DNS server of qmail-remote's MX tests; the binary
# only, no service), iproute2 (tests in private network namespaces bring up
# lo) and
# sslscan and testssl.sh (audit peers of the interop tests); haproxy (the load
# balancer in front of tcpserver-ssl in test_tcpserver_fleet); python3-venv,
# python3-pip, python3-setuptools, python3-wheel (the tested pip install of
# bindings/python).
packages="cmake gcc libc6-dev make pkg-config android-libboringssl-dev libcdb-dev
libtool libtool-bin openssl gnutls-bin swaks curl postfix dovecot-imapd dovecot-pop3d
python3 python3-dev python3-pytest python3-cryptography python3-trustme swig
python3-venv python3-pip python3-setuptools python3-wheel
clang-14 libclang-rt-14-dev ucspi-tcp valgrind file binutils procps iproute2
libnet-ssleay-perl sslscan testssl.sh haproxy dnsmasq-base
libunbound-dev dns-root-data nsd ldnsutils unbound"

if [ "$(id -u)" != 0 ]; then
	echo "$prog: fatal: must run as root (it installs packages with apt-get)" >&2
	exit 111
fi

missing=
for p in $packages; do
	if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	echo "$prog: every package is installed already"
	exit 0
fi
echo "$prog: to install:$missing"

export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
marker="# libmailtls tools/deps.sh"
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n%s: start no service while packages are installed\nexit 101\n' "$marker" >"$policy"
	chmod 755 "$policy"
	echo "$prog: installed $policy (exit 101: no service starts on installation)"
elif ! grep -q "^$marker" "$policy"; then
	echo "$prog: note: keeping the existing $policy"
fi
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

apt-get update || { echo "$prog: fatal: apt-get update failed" >&2; exit 111; }
# shellcheck disable=SC2086 # word splitting of the package list is meant
apt-get install -y --no-install-recommends $packages </dev/null ||
	{ echo "$prog: fatal: apt-get install failed" >&2; exit 111; }
echo "$prog: done"
