#!/usr/bin/env bash
# failover-vs-etcd.sh - leader kill -9 to the next successful write, RAFTiNG and etcd side by
# side in one run, at equal settings: heartbeat 100 ms, election timeout 1000 ms (etcd draws
# its timeout in [1000, 2000) ms; RAFTiNG runs with --election-timeout-ms-min 1000 --max 2000).
#
#   1. RAFTiNG as shipped (leader probes on: a crashed leader's closed port is noticed);
#   2. RAFTiNG with --leader-probes false (the election timeout alone, like etcd);
#   3. etcd 3.4: a 3-node cluster from etcd-cluster.sh, timed by etcd-failover.py (both here).
#
# Needs: python3, and for the etcd part etcd-server + etcd-client (Debian). Data under /tmp.
# Env: ROUNDS (10), OUT (/tmp/rafting-failover-vs-etcd).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ROUNDS="${ROUNDS:-10}"
OUT="${OUT:-/tmp/rafting-failover-vs-etcd}"; rm -rf "$OUT"; mkdir -p "$OUT"

cargo build --release -p rafting-server --manifest-path "$ROOT/Cargo.toml" >&2
echo "== RAFTiNG, leader probes on (default)"
"$HERE/rafting-failover.py" "$ROUNDS" | tee "$OUT/rafting.txt"
echo "== RAFTiNG, --leader-probes false"
NODE_EXTRA="--leader-probes false" "$HERE/rafting-failover.py" "$ROUNDS" | tee "$OUT/rafting-no-probes.txt"
if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
  echo "== etcd (heartbeat 100 ms, election 1000 ms)"
  "$HERE/etcd-cluster.sh" wipe >/dev/null 2>&1 || true
  "$HERE/etcd-cluster.sh" start >/dev/null
  "$HERE/etcd-failover.py" "$ROUNDS" | tee "$OUT/etcd.txt"
  "$HERE/etcd-cluster.sh" stop >/dev/null
else
  echo "etcd part skipped: install etcd-server and etcd-client"
fi
echo
echo "== summary (ms from kill -9 of the leader)"
grep -H SUMMARY "$OUT"/*.txt | sed "s|$OUT/||"
