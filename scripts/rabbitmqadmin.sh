#!/usr/bin/env bash
# Prints the path of rabbitmqadmin, the management API client that Debian
# ships in its rabbitmq-server package. Tests run it, unchanged, against
# warren. If the package is not installed, the script is taken from the
# package file without installing it (installing would start a RabbitMQ
# node on the ports the tests use) and kept in $WARREN_CACHE (default
# ~/.cache/warren).
set -euo pipefail

if [ -x /usr/bin/rabbitmqadmin ]; then
	echo /usr/bin/rabbitmqadmin
	exit 0
fi
cache=${WARREN_CACHE:-$HOME/.cache/warren}
found=$(find "$cache/rabbitmq-server" -name rabbitmqadmin -path '*/cli/*' 2>/dev/null | head -1 || true)
if [ -z "$found" ]; then
	mkdir -p "$cache/rabbitmq-server"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get download rabbitmq-server >/dev/null 2>&1) ||
		{ apt-get update -qq >/dev/null && (cd "$tmp" && apt-get download rabbitmq-server >/dev/null); } ||
		{ echo "cannot download Debian's rabbitmq-server package for rabbitmqadmin" >&2; exit 1; }
	dpkg-deb -x "$tmp"/rabbitmq-server_*.deb "$cache/rabbitmq-server"
	found=$(find "$cache/rabbitmq-server" -name rabbitmqadmin -path '*/cli/*' | head -1)
fi
[ -n "$found" ] || { echo "rabbitmqadmin not found in the rabbitmq-server package" >&2; exit 1; }
chmod +x "$found"
echo "$found"
