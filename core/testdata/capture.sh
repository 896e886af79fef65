#!/usr/bin/env bash
# Regenerates the golden sectors in this folder with sanlock 3.8.5 (Debian's /usr/sbin/sanlock):
# areas written by `sanlock direct`, and by two C daemons acting as hosts 1 and 2 of one
# lockspace (own run directories, -w 0, SANLOCK_PRIVILEGED=0). Takes about half a minute.
# usage: core/testdata/capture.sh   (needs sanlock; root is not needed)
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
SANLOCK=${SANLOCK:-/usr/sbin/sanlock}
work=$(mktemp -d /var/tmp/sanlock-golden.XXXXXX)
pids=()
cleanup() {
  for d in run1 run2; do
    [ -S "$work/$d/sanlock.sock" ] && SANLOCK_RUN_DIR=$work/$d "$SANLOCK" client shutdown -f 1 >/dev/null 2>&1 || true
  done
  sleep 1
  # A daemon that still holds a lockspace ignores SIGTERM; these hosts are throwaway.
  for p in "${pids[@]}"; do pkill -9 -P "$p" 2>/dev/null || true; kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# save FILE OFFSET SIZE NAME: one sector of FILE into NAME.
save() { dd if="$1" of="$out/$4" bs="$3" skip=$(($2 / $3)) count=1 status=none; }
direct() { "$SANLOCK" direct "$@" >/dev/null; }

cd "$work"
# Areas written by `direct init`, one file per geometry.
truncate -s 8M ls512 res512
direct init -s LS:0:$work/ls512:0
save ls512 0 512 delta_init_512_1m.sector
direct init -r LS:R1:$work/res512:0
save res512 0 512 paxos_init_512_1m_leader.sector
save res512 512 512 paxos_init_512_1m_request.sector
direct init -r LS:R4:$work/res512:1M -n 4
save res512 1048576 512 paxos_init_n4_leader.sector
direct init -r LS:RC:$work/res512:2M -z 1
save res512 2097152 512 paxos_clear_leader.sector
for a in 1M 2M 4M 8M; do
  truncate -s 8M ls4k_$a res4k_$a
  direct init -s LS:0:$work/ls4k_$a:0 -Z 4096 -A $a
  save ls4k_$a 0 4096 delta_init_4k_${a,,}.sector
  direct init -r LS:R1:$work/res4k_$a:0 -Z 4096 -A $a
  save res4k_$a 0 4096 paxos_init_4k_${a,,}_leader.sector
done
truncate -s 8M rx
direct format -x LS:$work/rx:0
direct update -x LS:$work/rx:0 -e vmlease1:2M
direct update -x LS:$work/rx:0 -e vmlease2:3M
save rx 0 512 rindex_header.sector
save rx 512 512 rindex_entries.sector

# Two C daemons as hosts 1 and 2.
truncate -s 1M ls
truncate -s 3M res
direct init -s LS:0:$work/ls:0
for i in 0 1 2; do direct init -r LS:R$i:$work/res:${i}M; done
for h in 1 2; do
  mkdir run$h
  SANLOCK_RUN_DIR=$work/run$h SANLOCK_PRIVILEGED=0 \
    "$SANLOCK" daemon -D -w 0 -l 0 -h 0 -U root -G root -e host$h >run$h/log 2>&1 &
  pids+=($!)
done
c1() { SANLOCK_RUN_DIR=$work/run1 "$SANLOCK" client "$@"; }
c2() { SANLOCK_RUN_DIR=$work/run2 "$SANLOCK" client "$@"; }
sleep 1
c1 add_lockspace -s LS:1:$work/ls:0 -o 1 >/dev/null &
joining=$!
c2 add_lockspace -s LS:2:$work/ls:0 -o 1 >/dev/null
wait $joining
c1 command -r LS:R0:$work/res:0 -c /bin/sleep 600 >/dev/null 2>&1 & pids+=($!)
c1 command -r LS:R1:$work/res:1M:SH -c /bin/sleep 600 >/dev/null 2>&1 & pids+=($!)
sleep 2
c2 command -r LS:R1:$work/res:1M:SH -c /bin/sleep 600 >/dev/null 2>&1 & pids+=($!)
c2 set_event -s LS -i 1 -e 77 -d 1234 >/dev/null
sleep 4
save ls 0 512 delta_host1_live.sector
save ls 512 512 delta_host2_event.sector
save res 0 512 paxos_ex_leader.sector
save res 1024 512 paxos_ex_dblock_host1.sector
save res 1048576 512 paxos_sh_leader.sector
save res $((1048576 + 1024)) 512 paxos_sh_dblock_host1.sector
save res $((1048576 + 1536)) 512 paxos_sh_dblock_host2.sector
# A GRACEFUL request makes host 1 stop its holder (SIGTERM) and release R0.
c2 request -r LS:R0:$work/res:0:2 -f 2 >/dev/null
for _ in $(seq 60); do
  "$SANLOCK" direct read_leader -r LS:R0:$work/res:0 | grep -qx 'timestamp 0' && break
  sleep 1
done
save res 0 512 paxos_released_leader.sector
save res 512 512 paxos_request_graceful.sector
save res 1024 512 paxos_released_dblock_host1.sector
"$SANLOCK" direct dump $work/res:0:3M -f 2 >"$out/capture-dump-res.txt"
"$SANLOCK" direct dump $work/ls:0:1M -f 1 >"$out/capture-dump-ls.txt"
echo "golden sectors written to $out"
