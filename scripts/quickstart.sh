#!/usr/bin/env bash
# The quick start: build `sanlock`, then on a file-backed lockspace in a temporary directory
# under /var/tmp (O_DIRECT needs a real file system, not tmpfs) initialise a lockspace and two
# resources, dump them and read their leaders; then a host (the core's lease machines on the
# files) joins the lockspace, takes a lease, holds it while renewing, and lets it go, with
# `read_leader` showing the owner meanwhile. Cleans up after itself. No SAN, no root.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p sanlock-daemon
cargo build --release -q -p sanlock-backends --example hold_lease
sanlock=$PWD/target/release/sanlock
hold_lease=$PWD/target/release/examples/hold_lease
dir=$(mktemp -d /var/tmp/sanlock-quickstart.XXXXXX)
trap 'rm -rf "$dir"' EXIT

step() { printf '\n$ sanlock %s\n' "$*"; "$sanlock" "$@"; }

truncate -s 1M "$dir/lockspace"
truncate -s 2M "$dir/resources"
step direct init -s "demo:0:$dir/lockspace:0" -o 1
step direct init -r "demo:vm1:$dir/resources:0"
step direct init -r "demo:vm2:$dir/resources:1M" -n 4
step direct read_leader -s "demo:1:$dir/lockspace:0"
step direct read_leader -r "demo:vm2:$dir/resources:1M"
step direct dump "$dir/resources:0:2M" -f 1

printf '\n$ hold_lease demo %s vm1 %s:0 6   # join as host 1, acquire vm1, hold 6 s, release, leave\n' \
  "$dir/lockspace" "$dir/resources"
"$hold_lease" demo "$dir/lockspace" vm1 "$dir/resources:0" 6 | tee "$dir/hold.log" &
holder=$!
for _ in $(seq 100); do grep -q acquired "$dir/hold.log" 2>/dev/null && break; sleep 0.2; done
step direct read_leader -r "demo:vm1:$dir/resources:0"
wait "$holder"
step direct read_leader -r "demo:vm1:$dir/resources:0"
printf '\nThe areas are byte-compatible with sanlock 3.8.5: /usr/sbin/sanlock direct dump reads them the same.\n'
