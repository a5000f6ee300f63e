#!/usr/bin/env bash
# run-vs-etcd.sh - RAFTiNG and etcd side by side on this machine, same workload, one run.
#
# 1. a 3-node `rafting dev` cluster (release build, fsync on, heartbeat 100 ms, election
#    1000-2000 ms): wrk PUTs of distinct keys with 100-byte values at CONNS connections against
#    the leader, then linearizable GETs at READ_CONNS connections;
# 2. the same with a 3-node etcd cluster (bench/etcd-cluster.sh: heartbeat 100 ms, election
#    1000 ms): wrk puts through etcd's v3 JSON gateway (etcd-put.lua) against its leader, then
#    linearizable ranges (etcd-range.lua). Everything it needs is in this folder.
#
# Needs: wrk, and for the etcd half etcd-server + etcd-client (Debian). Data under /tmp only.
# Env: DUR (15) seconds per run, CONNS ("1 16 64"), READ_CONNS (64), OUT (/tmp/rafting-vs-etcd).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
DUR="${DUR:-15}"; CONNS="${CONNS:-1 16 64}"; READ_CONNS="${READ_CONNS:-64}"
OUT="${OUT:-/tmp/rafting-vs-etcd}"; rm -rf "$OUT"; mkdir -p "$OUT"
PORT=18001
DATA="$OUT/rafting-data"

cargo build --release -p rafting-server --manifest-path "$ROOT/Cargo.toml" >&2
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/rafting"
"$BIN" dev --nodes 3 --http-port "$PORT" --data "$DATA" >"$OUT/dev.log" 2>&1 &
DEV=$!
trap 'kill -INT $DEV 2>/dev/null; wait $DEV 2>/dev/null || true' EXIT
for _ in $(seq 200); do
  curl -fsS --max-time 1 "http://127.0.0.1:$PORT/v1/health" >/dev/null 2>&1 && break; sleep 0.1
done
LEADER=$(curl -fsS "http://127.0.0.1:$PORT/v1/cluster" | python3 -c '
import json,sys
c=json.load(sys.stdin)
print(next("http://"+n["http"] for n in c["nodes"] if n["id"]==c["leader"]))')
echo "rafting leader: $LEADER"

parse() { # wrk output -> "rps p50ms p99ms non2xx sockerr completed"
  python3 - "$1" <<'PY'
import re,sys
t=open(sys.argv[1]).read()
def ms(v,u): return float(v)*{'us':1e-3,'ms':1,'s':1e3,'m':6e4}[u]
lat={p:ms(v,u) for p,v,u in re.findall(r'^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$',t,re.M)}
rps=float(re.search(r'Requests/sec:\s+([\d.]+)',t).group(1))
n2=re.search(r'Non-2xx or 3xx responses:\s+(\d+)',t); n2=int(n2.group(1)) if n2 else 0
se=re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)',t)
se=sum(map(int,se.groups())) if se else 0
done=int(re.search(r'(\d+) requests in',t).group(1))
print(f"{rps:.0f} {lat['50']:.2f} {lat['99']:.2f} {n2} {se} {done}")
PY
}

SUMMARY="$OUT/summary.txt"
{
echo "RAFTiNG 3 nodes on 127.0.0.1 (rafting dev, release), $(nproc) CPUs shared by 3 nodes + wrk; ${DUR}s per run; value 100B; distinct keys"
printf "%-22s %7s %9s %9s %9s %7s %7s %9s\n" test conns req/s p50_ms p99_ms non2xx sockerr completed
} | tee "$SUMMARY"
for c in $CONNS; do
  t=$(( c < 2 ? 1 : 2 ))
  KEY_PREFIX="put-c$c" wrk -t$t -c"$c" -d"${DUR}s" --latency -s "$HERE/rafting-put.lua" "$LEADER" >"$OUT/put-c$c.wrk" 2>&1
  read -r rps p50 p99 n2 se done < <(parse "$OUT/put-c$c.wrk")
  printf "%-22s %7s %9s %9s %9s %7s %7s %9s\n" "put(distinct keys)" "$c" "$rps" "$p50" "$p99" "$n2" "$se" "$done" | tee -a "$SUMMARY"
done
# Honesty: the keys written at 64 connections are all there.
KEYS=$(curl -fsS "$LEADER/v1/kv/put-c${CONNS##* }?list&keys_only&limit=0" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(len(j.get("keys", j.get("entries", []))))' 2>/dev/null || echo "?")
echo "keys listed under /put-c${CONNS##* }: $KEYS (first page)" | tee -a "$SUMMARY"
READ_KEY="/put-c${CONNS%% *}/1/0000000002" wrk -t2 -c"$READ_CONNS" -d"${DUR}s" --latency -s "$HERE/rafting-get.lua" "$LEADER" >"$OUT/get-linearizable.wrk" 2>&1
read -r rps p50 p99 n2 se done < <(parse "$OUT/get-linearizable.wrk")
printf "%-22s %7s %9s %9s %9s %7s %7s %9s\n" "get(linearizable)" "$READ_CONNS" "$rps" "$p50" "$p99" "$n2" "$se" "$done" | tee -a "$SUMMARY"
kill -INT $DEV; wait $DEV 2>/dev/null || true
trap - EXIT

if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  echo "etcd half skipped: install etcd-server and etcd-client"
  exit 0
fi
ETCD="$HERE/etcd-cluster.sh"
export BASE="$OUT/etcd-data"
"$ETCD" wipe >/dev/null
"$ETCD" start all >/dev/null
trap '"$ETCD" stop all >/dev/null 2>&1 || true' EXIT
read -r _ ETCD_LEADER _ < <("$ETCD" leader)
echo
{
echo "etcd $(etcd --version | head -1 | awk '{print $3}') 3 nodes on 127.0.0.1 (heartbeat 100 ms, election 1000 ms), leader $ETCD_LEADER; ${DUR}s per run; value 100B; distinct keys"
printf "%-22s %7s %9s %9s %9s %7s %7s %9s\n" test conns req/s p50_ms p99_ms non2xx sockerr completed
} | tee -a "$SUMMARY"
for c in $CONNS; do
  t=$(( c < 2 ? 1 : 2 ))
  KEY_PREFIX="put-c$c" wrk -t$t -c"$c" -d"${DUR}s" --latency -s "$HERE/etcd-put.lua" "$ETCD_LEADER" >"$OUT/etcd-put-c$c.wrk" 2>&1
  read -r rps p50 p99 n2 se done < <(parse "$OUT/etcd-put-c$c.wrk")
  printf "%-22s %7s %9s %9s %9s %7s %7s %9s\n" "put(distinct keys)" "$c" "$rps" "$p50" "$p99" "$n2" "$se" "$done" | tee -a "$SUMMARY"
done
RANGE_KEY="put-c${CONNS%% *}/1/0000000002" wrk -t2 -c"$READ_CONNS" -d"${DUR}s" --latency -s "$HERE/etcd-range.lua" "$ETCD_LEADER" >"$OUT/etcd-range-linearizable.wrk" 2>&1
read -r rps p50 p99 n2 se done < <(parse "$OUT/etcd-range-linearizable.wrk")
printf "%-22s %7s %9s %9s %9s %7s %7s %9s\n" "range(linearizable)" "$READ_CONNS" "$rps" "$p50" "$p99" "$n2" "$se" "$done" | tee -a "$SUMMARY"
echo "summary in $SUMMARY, raw wrk outputs in $OUT"
