#!/usr/bin/env bash
# Cluster messaging demo (docs/MESSAGING.md): three daemons (hosts 1-3) on one lockspace file
# in a temporary directory, a messaging area beside it, a listener on each of hosts 2 and 3;
# host 1 sends; host 3's listener is killed in the middle of a message, and the send still
# returns, with host 2 having processed it. DAEMON=/usr/sbin/sanlock runs the daemons from
# Debian's sanlock 3.8.5 instead of ours (the `msg` commands are ours either way).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p sanlock-daemon
B=$PWD/target/release/sanlock
DAEMON=${DAEMON:-$B}
D=$(mktemp -d /var/tmp/sanlock-msg-demo.XXXXXX)
cleanup() {
    pkill -f "msg listen -s DEMO" 2>/dev/null || true
    for h in 1 2 3; do
        [ -f "$D/run$h/dpid" ] && kill -9 "$(cat "$D/run$h/dpid")" 2>/dev/null || true
    done
    rm -rf "$D"
}
trap cleanup EXIT

truncate -s 1M "$D/ls"
truncate -s 4M "$D/area"
"$B" direct init -s "DEMO:0:$D/ls:0" -o 1 >/dev/null
"$B" msg init -s DEMO -a "$D/area:0"
for h in 1 2 3; do
    mkdir -p "$D/run$h"
    SANLOCK_RUN_DIR=$D/run$h SANLOCK_PRIVILEGED=0 setsid "$DAEMON" daemon -D -w 0 -l 0 -h 0 \
        -U root -G root -e "host$h" >/dev/null 2>"$D/run$h/log" &
    echo $! >"$D/run$h/dpid"
    disown
done
for h in 1 2 3; do
    while [ ! -S "$D/run$h/sanlock.sock" ]; do sleep 0.1; done
done
pids=()
for h in 1 2 3; do
    SANLOCK_RUN_DIR=$D/run$h "$B" client add_lockspace -s "DEMO:$h:$D/ls:0" -o 1 >/dev/null &
    pids+=($!)
done
wait "${pids[@]}"
echo "three daemons ($DAEMON) joined lockspace DEMO as hosts 1, 2, 3"

SANLOCK_RUN_DIR=$D/run2 "$B" msg listen -s DEMO -a "$D/area:0" >"$D/out2" 2>&1 &
disown
SANLOCK_RUN_DIR=$D/run3 "$B" msg listen -s DEMO -a "$D/area:0" -p 30000 >"$D/out3" 2>&1 &
L3=$!
disown
sleep 2
send() {
    local t0 t1
    t0=$(date +%s.%N)
    SANLOCK_RUN_DIR=$D/run1 "$B" msg send -s DEMO -a "$D/area:0" "$@"
    t1=$(date +%s.%N)
    printf '  (%.2f s)\n' "$(echo "$t1 - $t0" | bc)"
}
echo "host 1 sends 'hello' (host 3's listener takes 30 s to process each message; it is killed after 3 s):"
(sleep 3 && kill -9 $L3 && echo "  [host 3's listener killed]") &
send hello
sleep 0.5
echo "host 1 sends 'second' (only host 2 is a member now):"
send second
sleep 0.5
echo "host 2 printed:"
sed 's/^/  /' "$D/out2"
echo "host 3 printed (killed before it processed anything):"
sed 's/^/  /' "$D/out3"
