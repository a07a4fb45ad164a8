#!/usr/bin/env bash
# Builds the Debian package of warren: the five programs, the systemd
# units, /etc/warren/warren.conf (a conffile, comments only), the example
# configuration, and maintainer scripts that create the warren system
# user.
#
#   ./scripts/deb.sh            writes dist/warren_VERSION_ARCH.deb
#   ./scripts/deb.sh -o DIR     writes it to DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=dist
while getopts "o:" opt; do
	case $opt in
	o) out=$OPTARG ;;
	*) echo "usage: $0 [-o DIR]" >&2; exit 2 ;;
	esac
done
command -v dpkg-deb >/dev/null || { echo "deb: needs dpkg-deb (Debian package dpkg)" >&2; exit 1; }
version=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' internal/broker/conn.go)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d /tmp/warren-deb.XXXXXX)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/sbin" "$stage/lib/systemd/system" "$stage/usr/share/doc/warren/examples"
CGO_ENABLED=0 go build -trimpath -o "$stage/usr/bin/" ./cmd/warren ./cmd/warrenctl ./cmd/warren-perf
CGO_ENABLED=0 go build -trimpath -o "$stage/usr/sbin/" ./cmd/warren-lb ./cmd/warren-vrrp
install -m 0644 packaging/systemd/*.service "$stage/lib/systemd/system/"
install -m 0644 examples/warren.conf examples/definitions.json examples/haproxy.cfg \
	examples/keepalived-master.conf examples/keepalived-backup.conf "$stage/usr/share/doc/warren/examples/"
install -m 0755 examples/notify.sh "$stage/usr/share/doc/warren/examples/"
install -m 0644 README.md "$stage/usr/share/doc/warren/"
mkdir -p "$stage/etc/warren"
install -m 0644 packaging/debian/warren.conf "$stage/etc/warren/"
echo /etc/warren/warren.conf > "$stage/DEBIAN/conffiles"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" packaging/debian/control.in > "$stage/DEBIAN/control"
install -m 0755 packaging/debian/postinst packaging/debian/postrm "$stage/DEBIAN/"
mkdir -p "$out"
deb="$out/warren_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz -b "$stage" "$deb" >/dev/null
echo "$deb"
