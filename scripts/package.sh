#!/usr/bin/env bash
# Builds the Debian package of sanlock-rs into target/debian/ with Debian's own tools
# (dpkg-shlibdeps for the library dependencies, dpkg-deb to build):
#   sanlock-rs_<version>-1_<arch>.deb: /usr/sbin/sanlock, sanlock.service, /etc/sanlock/sanlock.conf,
#   /etc/default/sanlock, sanlock(8); Provides, Conflicts and Replaces sanlock, so that
#   `apt install ./target/debian/sanlock-rs_*.deb` swaps Debian's sanlock for it while
#   libsanlock1, python3-sanlock and libvirt keep working.
# Usage: scripts/package.sh [--binary PATH]   (default: a release build; the tests pass the
# binary they built, to check the packaging without a second build).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
if [ "${1:-}" = --binary ]; then
    binary=$2
else
    cargo build --release --locked -p sanlock-daemon --bin sanlock
    target=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    binary=$target/release/sanlock
fi
[ -x "$binary" ] || { echo "package.sh: no executable at $binary" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)-1
arch=$(dpkg --print-architecture)
out=target/debian
mkdir -p "$out"
stage=$(mktemp -d)
chmod 755 "$stage"
trap 'rm -rf "$stage"' EXIT

install -Dm755 "$binary" "$stage/usr/sbin/sanlock"
strip --strip-unneeded "$stage/usr/sbin/sanlock"
install -Dm644 packaging/sanlock.service "$stage/lib/systemd/system/sanlock.service"
install -Dm644 packaging/sanlock.conf "$stage/etc/sanlock/sanlock.conf"
install -Dm644 packaging/default-sanlock "$stage/etc/default/sanlock"
install -d "$stage/usr/share/man/man8" "$stage/usr/share/doc/sanlock-rs"
gzip -9n < docs/sanlock.8 > "$stage/usr/share/man/man8/sanlock.8.gz"
install -m644 packaging/copyright "$stage/usr/share/doc/sanlock-rs/copyright"

# The shared libraries the binary links, as dpkg-shlibdeps names them (it wants a debian/
# folder to stand in).
shlibs=$(cd "$stage" && mkdir -p debian && touch debian/control &&
    dpkg-shlibdeps -O -e usr/sbin/sanlock 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
rm -rf "$stage/debian"

install -d "$stage/DEBIAN"
install -m755 packaging/postinst packaging/prerm packaging/postrm "$stage/DEBIAN/"
printf '/etc/default/sanlock\n/etc/sanlock/sanlock.conf\n' > "$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: sanlock-rs
Version: $version
Architecture: $arch
Maintainer: sanlock-rs developers <sanlock-rs@example.invalid>
Installed-Size: $size
Depends: $shlibs, adduser
Provides: sanlock (= 3.8.5)
Conflicts: sanlock
Replaces: sanlock
Section: admin
Priority: optional
Homepage: https://example.invalid/sanlock-rs
Description: shared-storage lock manager, a drop-in for sanlock 3.8.5
 Hosts that see the same storage (a SAN LUN, a logical volume, a file on NFS) hold leases
 on it and coordinate only through its sectors: a delta lease per host in a lockspace and
 paxos leases for resources. This daemon and command line write the same bytes and speak
 the same socket protocol as sanlock 3.8.5, so C and Rust hosts share lockspaces and
 libsanlock, python3-sanlock, libvirt and lvmlockd use it unchanged.
CONTROL
(cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z |
    xargs -0 md5sum > DEBIAN/md5sums)

deb="$out/sanlock-rs_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
