#!/usr/bin/env bash
# The Debian package, checked (part of the test command): build it around the binary the
# tests built, check its fields and files, verify the unit with systemd-analyze where it is
# installed, render the man page without warnings, then run the python3-sanlock tests against
# the binary taken out of the package.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
for tool in dpkg-deb dpkg-shlibdeps; do
    command -v $tool >/dev/null || { echo "package check skipped: $tool is not installed"; exit 0; }
done
deb=$(./scripts/package.sh --binary "$target/debug/sanlock" | tail -1)
fail() { echo "package check: $*" >&2; exit 1; }

field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = sanlock-rs ] || fail "Package is $(field Package)"
[ "$(field Provides)" = "sanlock (= 3.8.5)" ] || fail "Provides is $(field Provides)"
[ "$(field Conflicts)" = sanlock ] || fail "Conflicts is $(field Conflicts)"
[ "$(field Replaces)" = sanlock ] || fail "Replaces is $(field Replaces)"
case "$(field Depends)" in *libc6*adduser*) ;; *) fail "Depends is $(field Depends)" ;; esac

files=$(dpkg-deb -c "$deb" | awk '{print $1, $6}')
for want in "-rwxr-xr-x ./usr/sbin/sanlock" "-rw-r--r-- ./lib/systemd/system/sanlock.service" \
    "-rw-r--r-- ./etc/sanlock/sanlock.conf" "-rw-r--r-- ./etc/default/sanlock" \
    "-rw-r--r-- ./usr/share/man/man8/sanlock.8.gz" "-rw-r--r-- ./usr/share/doc/sanlock-rs/copyright"; do
    grep -qxF -- "$want" <<<"$files" || fail "no $want in: $files"
done
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)" = \
    "$(printf '/etc/default/sanlock\n/etc/sanlock/sanlock.conf')" ] || fail "conffiles"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
bin="$root/usr/sbin/sanlock"
[ "$("$bin" version)" = 3.8.5 ] || fail "the packaged binary says $("$bin" version)"
grep -qx 'ExecStart=/usr/sbin/sanlock daemon $sanlock_opts' "$root/lib/systemd/system/sanlock.service" ||
    fail "ExecStart"
if command -v systemd-analyze >/dev/null; then
    # verify checks that ExecStart is executable: point it at the packaged binary. It exits 0
    # on what it ignores, so any word from it fails the check.
    mkdir "$root/unit"
    sed "s|^ExecStart=/usr/sbin/sanlock|ExecStart=$bin|" \
        "$root/lib/systemd/system/sanlock.service" > "$root/unit/sanlock.service"
    said=$(systemd-analyze verify "$root/unit/sanlock.service" 2>&1) || fail "systemd-analyze: $said"
    [ -z "$said" ] || fail "systemd-analyze: $said"
    echo "package check: systemd-analyze verify: no complaint"
else
    echo "package check: systemd-analyze skipped: not installed"
fi
if command -v groff >/dev/null; then
    said=$(zcat "$root/usr/share/man/man8/sanlock.8.gz" | groff -man -ww -z 2>&1)
    [ -z "$said" ] || fail "groff: $said"
fi
echo "package check: $deb: fields and files as they should be"
SANLOCK_UNDER_TEST="$bin" cargo test -p sanlock-daemon --test daemon_python -- --nocapture
