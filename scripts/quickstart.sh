#!/usr/bin/env bash
# The quick start: build `sanlock`, then on a file-backed lockspace in a temporary directory
# under /var/tmp (O_DIRECT needs a real file system, not tmpfs) initialise a lockspace and two
# resources, dump them and read their leaders. Cleans up after itself. No SAN, no root.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p sanlock-daemon
sanlock=$PWD/target/release/sanlock
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
printf '\nThe areas are byte-compatible with sanlock 3.8.5: /usr/sbin/sanlock direct dump reads them the same.\n'
