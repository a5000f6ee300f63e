#!/usr/bin/env bash
# many-clients.sh - issue 17 ("Many clients"): RAFTiNG's event-driven HTTP front under many
# connections, with etcd side by side. Everything it needs is in this folder.
#
# 1. puts: wrk PUTs of distinct keys (100-byte values) at 64, 256 and 1,024 connections against
#    the leader of a 3-node `rafting dev` cluster, then the same against a 3-node etcd
#    cluster's v3 JSON gateway (run-vs-etcd.sh with CONNS="64 256 1024"); puts/s and p99 side
#    by side in $OUT/puts/summary.txt;
# 2. watchers: a fresh 3-node `rafting dev` cluster; WATCHERS (10,000) watch long polls on one
#    prefix of the leader, opened by the `watch_flood` example (one mio thread: a watcher is a
#    socket, not a thread); CHANGES puts under the prefix, one every INTERVAL_MS; reported:
#    delivery latency after each put's acknowledgement (p50/p99/max) and the node's VmRSS.
#    Run once per mode of WATCH_MODES ("stream poll"): watch streams (`?watch&stream`,
#    `watch_flood --stream`), then long polls, on the same node one after the other.
#
# Needs: wrk; etcd-server + etcd-client for the etcd half of 1. Data under /tmp only.
# 2'. the same number of watch streams on one etcd member, each one HTTP connection carrying a
#    `POST /v3/watch` stream through etcd's v3 JSON gateway (`watch_flood --etcd`).
#
# Env: DUR (10) seconds per wrk run, WATCHERS (10000), CHANGES (20), INTERVAL_MS (1000),
#      WATCH_MODES ("stream poll"), OUT (/tmp/rafting-many-clients), CARGO_TARGET_DIR (target); SKIP_PUTS=1 and
#      SKIP_RAFTING_WATCH=1 / SKIP_ETCD_WATCH=1 leave out part 1, 2 or 2'.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
DUR="${DUR:-10}"; WATCHERS="${WATCHERS:-10000}"; CHANGES="${CHANGES:-20}"
INTERVAL_MS="${INTERVAL_MS:-1000}"; OUT="${OUT:-/tmp/rafting-many-clients}"
# Streams first: a long poll's connection is not read while its poll waits, so the node
# notices that a finished run's pollers left only when their polls time out (60 s), and until
# then they count against its connection cap.
WATCH_MODES="${WATCH_MODES:-stream poll}"
rm -rf "$OUT"; mkdir -p "$OUT"
# Every connection is a descriptor, on both sides.
ulimit -n "$(ulimit -Hn)"

cargo build --release -p rafting-server --bin rafting --example watch_flood \
  --manifest-path "$ROOT/Cargo.toml" >&2
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release/rafting"
FLOOD="$TARGET/release/examples/watch_flood"

if [ "${SKIP_PUTS:-0}" != 1 ]; then
  echo "== 1. puts at 64, 256 and 1024 connections, RAFTiNG and etcd"
  DUR="$DUR" CONNS="64 256 1024" READ_CONNS=64 OUT="$OUT/puts" "$HERE/run-vs-etcd.sh"
fi

if [ "${SKIP_RAFTING_WATCH:-0}" != 1 ]; then
echo "== 2. $WATCHERS watchers on one prefix of one node"
PORT=18101
"$BIN" dev --nodes 3 --http-port "$PORT" --data "$OUT/watch-data" >"$OUT/watch-dev.log" 2>&1 &
DEV=$!
trap 'kill -INT $DEV 2>/dev/null; wait $DEV 2>/dev/null || true' EXIT
for _ in $(seq 200); do
  curl -fsS --max-time 1 "http://127.0.0.1:$PORT/v1/health" >/dev/null 2>&1 && break; sleep 0.1
done
LEADER=$(curl -fsS "http://127.0.0.1:$PORT/v1/cluster" | python3 -c '
import json,sys
c=json.load(sys.stdin)
print(next(n["http"] for n in c["nodes"] if n["id"]==c["leader"]))')
LEADER_PORT="${LEADER##*:}"
PID=$(ss -ltnpH "sport = :$LEADER_PORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
echo "watching the leader $LEADER (pid $PID), putting through it"
for MODE in $WATCH_MODES; do
  FLAGS=""; [ "$MODE" = stream ] && FLAGS="--stream"
  echo "-- $MODE"
  # shellcheck disable=SC2086
  "$FLOOD" $FLAGS --watch "$LEADER" --put "$LEADER" --watchers "$WATCHERS" --changes "$CHANGES" \
    --interval-ms "$INTERVAL_MS" --prefix "/flood-$MODE" --pid "$PID" | tee -a "$OUT/watchers.txt"
  echo "threads of the node: $(ls /proc/"$PID"/task | wc -l)" | tee -a "$OUT/watchers.txt"
  sleep 2
done
kill -INT $DEV 2>/dev/null; wait $DEV 2>/dev/null || true
trap - EXIT
fi

if [ "${SKIP_ETCD_WATCH:-0}" = 1 ]; then
  exit 0
fi
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  echo "etcd half skipped: install etcd-server and etcd-client"
  exit 0
fi
echo "== 2'. $WATCHERS watch streams on one prefix of one etcd member (v3 JSON gateway)"
ETCD="$HERE/etcd-cluster.sh"
export BASE="$OUT/etcd-watch-data"
"$ETCD" wipe >/dev/null
"$ETCD" start all >/dev/null
trap '"$ETCD" stop all >/dev/null 2>&1 || true' EXIT
read -r ETCD_NODE ETCD_LEADER _ < <("$ETCD" leader)
ETCD_ADDRESS="${ETCD_LEADER#http://}"
ETCD_PID=$(cat "$BASE/$ETCD_NODE.pid")
echo "watching the etcd leader $ETCD_LEADER (pid $ETCD_PID), putting through it"
"$FLOOD" --etcd --watch "$ETCD_ADDRESS" --put "$ETCD_ADDRESS" --watchers "$WATCHERS" \
  --changes "$CHANGES" --interval-ms "$INTERVAL_MS" --pid "$ETCD_PID" | tee "$OUT/etcd-watchers.txt"
echo "threads of etcd: $(ls /proc/"$ETCD_PID"/task | wc -l)" | tee -a "$OUT/etcd-watchers.txt"
