#!/usr/bin/env bash
# etcd-cluster.sh - a local 3-node etcd cluster on 127.0.0.1, the other side of run-vs-etcd.sh and
# failover-vs-etcd.sh (needs etcd-server and etcd-client; data under /tmp only).
#   etcd-cluster.sh start [n1|n2|n3|all]   start node(s) (existing data dir => rejoin)
#   etcd-cluster.sh stop  [n1|n2|n3|all]   SIGTERM by PID file (kill9 NODE for SIGKILL)
#   etcd-cluster.sh kill9 NODE             SIGKILL one node by PID file
#   etcd-cluster.sh wipe                   stop all + remove $BASE
#   etcd-cluster.sh status                 etcdctl endpoint health + status table
#   etcd-cluster.sh leader                 print "<node> <client-url> <member-id-hex>" of the current leader
#   etcd-cluster.sh endpoints              print comma-separated client URLs
# Env: BASE (default /tmp/etcd-bench), HEARTBEAT (100), ELECTION (1000), ETCD_EXTRA (extra flags).
set -euo pipefail
BASE="${BASE:-/tmp/etcd-bench}"
HEARTBEAT="${HEARTBEAT:-100}"
ELECTION="${ELECTION:-1000}"
NODES=(n1 n2 n3)
declare -A CPORT=([n1]=22379 [n2]=23379 [n3]=24379)
declare -A PPORT=([n1]=22380 [n2]=23380 [n3]=24380)
export ETCDCTL_API=3

curl_of() { echo "http://127.0.0.1:${CPORT[$1]}"; }
endpoints() { local e=(); for n in "${NODES[@]}"; do e+=("$(curl_of "$n")"); done; (IFS=,; echo "${e[*]}"); }
initial_cluster() { local e=(); for n in "${NODES[@]}"; do e+=("$n=http://127.0.0.1:${PPORT[$n]}"); done; (IFS=,; echo "${e[*]}"); }
pidfile() { echo "$BASE/$1.pid"; }
alive() { local f; f=$(pidfile "$1"); [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }
sel() { if [ "${1:-all}" = all ]; then echo "${NODES[@]}"; else echo "$1"; fi; }

start_node() {
  local n=$1
  if alive "$n"; then echo "$n already running (pid $(cat "$(pidfile "$n")"))"; return; fi
  mkdir -p "$BASE"
  local state=new; [ -d "$BASE/$n.etcd/member" ] && state=existing
  # shellcheck disable=SC2086
  nohup etcd --name "$n" --data-dir "$BASE/$n.etcd" \
    --listen-client-urls "http://127.0.0.1:${CPORT[$n]}" --advertise-client-urls "http://127.0.0.1:${CPORT[$n]}" \
    --listen-peer-urls "http://127.0.0.1:${PPORT[$n]}" --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$n]}" \
    --initial-cluster "$(initial_cluster)" --initial-cluster-token etcd-bench --initial-cluster-state "$state" \
    --heartbeat-interval "$HEARTBEAT" --election-timeout "$ELECTION" \
    --logger zap --log-outputs stderr ${ETCD_EXTRA:-} \
    >"$BASE/$n.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$n")"
  echo "started $n pid $! client $(curl_of "$n") peer http://127.0.0.1:${PPORT[$n]} state=$state"
}

stop_node() {
  local n=$1 sig=${2:-TERM} f; f=$(pidfile "$n")
  if alive "$n"; then
    local pid; pid=$(cat "$f")
    kill -s "$sig" "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    echo "stopped $n pid $pid ($sig)"
  fi
  rm -f "$f"
}

wait_healthy() { # wait until all nodes in $@ report healthy (max ~20 s)
  for _ in $(seq 200); do
    local ok=1
    for n in "$@"; do curl -fsS --max-time 1 "$(curl_of "$n")/health" 2>/dev/null | grep -q '"health":"true"' || ok=0; done
    [ $ok = 1 ] && return 0; sleep 0.1
  done
  echo "cluster not healthy after 20s" >&2; return 1
}

leader() {
  etcdctl --endpoints "$(endpoints)" endpoint status -w json 2>/dev/null | python3 -c '
import json,sys
for s in json.load(sys.stdin):
    st=s["Status"]
    if st["header"]["member_id"]==st["leader"]:
        port=s["Endpoint"].rsplit(":",1)[1]
        name={"22379":"n1","23379":"n2","24379":"n3"}[port]
        print(name, s["Endpoint"], format(st["leader"],"x")); break
else:
    sys.exit(1)'
}

cmd=${1:-}; shift || true
case "$cmd" in
  start) nodes=$(sel "${1:-all}"); for n in $nodes; do start_node "$n"; done
         # shellcheck disable=SC2086
         if [ "${1:-all}" = all ]; then wait_healthy $nodes && echo healthy; fi ;;
  stop)  for n in $(sel "${1:-all}"); do stop_node "$n"; done ;;
  kill9) stop_node "$1" KILL ;;
  wipe)  for n in "${NODES[@]}"; do stop_node "$n"; done; rm -rf "$BASE"; echo "wiped $BASE" ;;
  status) etcdctl --endpoints "$(endpoints)" endpoint health -w table || true
          etcdctl --endpoints "$(endpoints)" endpoint status -w table ;;
  leader) leader ;;
  endpoints) endpoints ;;
  wait) wait_healthy "${NODES[@]}" ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
