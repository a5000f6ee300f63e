#!/usr/bin/env python3
"""restart-figures.py - what a snapshot buys at restart, and what a key costs in memory (issue 16).

For each of two runs of a 3-node cluster (release build, fsync on, data under /tmp):
- `compaction`: the defaults (a snapshot every 100,000 entries or 64 MiB);
- `no compaction`: `--snapshot-every-entries 0 --snapshot-every-bytes 0` (the log keeps
  everything, as before snapshots existed),
the script puts PUTS distinct keys with VALUE_SIZE-byte values (wrk, 64 connections,
bench/rafting-put.lua) through the leader, waits until a follower has applied all of them,
reads its resident memory, kills it with SIGKILL, starts it again on the same folder and
measures:
- restart: from spawn until the follower has applied everything committed before the kill
  (its snapshot restored and its log's tail replayed, the leader's heartbeat telling it what is
  committed), and until its `/v1/health` is 200;
- memory: VmRSS of the loaded node and of the restarted one, against the raw size of the data
  (key bytes + value bytes);
- disk: the folder's size, and how many log entries the restart had to replay (the last index
  minus the snapshot index).

Env: PUTS (1000000), VALUE_SIZE (100), PORT (18501: HTTP 18501-18503, UDP 18601-18603).
Needs wrk.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(ROOT, "target", "release", "rafting")
PUTS = int(os.environ.get("PUTS", "1000000"))
VALUE_SIZE = int(os.environ.get("VALUE_SIZE", "100"))
PORT = int(os.environ.get("PORT", "18501"))
WRK_THREADS = 2
WRK_CONNECTIONS = 64


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return None, b""


def status(endpoint):
    code, body = get(endpoint + "/v1/status")
    return json.loads(body) if code == 200 else None


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def folder_mib(path):
    total = 0
    for folder, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, name)) for name in files)
    return total / (1024 * 1024)


def http_address(node):
    return f"127.0.0.1:{PORT + node - 1}"


def udp_address(node):
    return f"127.0.0.1:{PORT + 100 + node - 1}"


def start(data, node, extra):
    log = open(os.path.join(data, f"stdout-{node}.log"), "ab")
    peers = []
    for other in (1, 2, 3):
        if other != node:
            peers += ["--peer", f"{other}={udp_address(other)},{http_address(other)}"]
    return subprocess.Popen(
        [BIN, "node", "--id", str(node), "--data", os.path.join(data, f"node-{node}"),
         "--http", http_address(node), "--udp", udp_address(node),
         "--initial-cluster-state", "new"] + peers + extra,
        stdout=log, stderr=subprocess.STDOUT)


def wait_until(predicate, limit_s, what):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.01)
    raise RuntimeError(f"timed out waiting for {what}")


def healthy(endpoint):
    return get(endpoint + "/v1/health", timeout=1)[0] == 200


def run(name, extra):
    data = f"/tmp/rafting-restart-{name.replace(' ', '-')}"
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    nodes = {node: start(data, node, extra) for node in (1, 2, 3)}
    try:
        first = "http://" + http_address(1)
        wait_until(lambda: healthy(first), 20, "the first start")
        leader = status(first)["leader"]
        endpoint = "http://" + http_address(leader)
        follower = 1 if leader != 1 else 2
        follower_endpoint = "http://" + http_address(follower)
        env = dict(os.environ, VALUE_SIZE=str(VALUE_SIZE), KEY_PREFIX="restart")
        began = time.monotonic()
        # wrk runs for a duration, not a count: stop it once the store holds PUTS keys.
        wrk = subprocess.Popen(["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", "-d3600s",
                                "-s", os.path.join(HERE, "rafting-put.lua"), endpoint],
                               env=env, stdout=subprocess.DEVNULL)
        try:
            wait_until(lambda: (s := status(endpoint)) and s["store_revision"] >= PUTS,
                       3600, f"{PUTS} puts")
        finally:
            wrk.send_signal(signal.SIGINT)
            wrk.wait()
        load_s = time.monotonic() - began
        commit = status(endpoint)["commit_index"]
        wait_until(lambda: (s := status(follower_endpoint)) and s["applied_index"] >= commit,
                   120, "everything applied at the follower")
        before = status(follower_endpoint)
        revision = before["store_revision"]
        loaded_rss = rss_mib(nodes[follower].pid)
        nodes[follower].send_signal(signal.SIGKILL)
        nodes[follower].wait()
        disk = folder_mib(os.path.join(data, f"node-{follower}"))

        spawned = time.monotonic()
        nodes[follower] = start(data, follower, extra)
        applied_at = wait_until(
            lambda: (s := status(follower_endpoint)) and s["applied_index"] >= commit,
            600, "the follower applying everything after its restart")
        healthy_at = wait_until(lambda: healthy(follower_endpoint), 60, "health after restart")
        after = status(follower_endpoint)
        restarted_rss = rss_mib(nodes[follower].pid)
        return {
            "run": name,
            "puts_per_s": round(revision / load_s),
            "revision": revision,
            "last_index": before["last_index"],
            "snapshot_index": before["snapshot_index"],
            "replayed_entries": before["last_index"] - before["snapshot_index"],
            "restart_applied_s": round(applied_at - spawned, 2),
            "restart_health_s": round(healthy_at - spawned, 2),
            "rss_loaded_mib": round(loaded_rss),
            "rss_restarted_mib": round(restarted_rss),
            "disk_mib": round(disk),
        }
    finally:
        for node in nodes.values():
            node.kill()
            node.wait()
        shutil.rmtree(data, ignore_errors=True)


def main():
    subprocess.run(["cargo", "build", "--release", "-p", "rafting-server",
                    "--manifest-path", os.path.join(ROOT, "Cargo.toml")], check=True,
                   stdout=sys.stderr)
    key_bytes = len(f"/restart/1/{0:010d}")
    raw_mib = PUTS * (key_bytes + VALUE_SIZE) / (1024 * 1024)
    print(f"{PUTS} puts of {VALUE_SIZE} B values to distinct {key_bytes}-byte keys; "
          f"raw size (keys + values) {raw_mib:.0f} MiB")
    results = [
        run("compaction", []),
        run("no compaction", ["--snapshot-every-entries", "0", "--snapshot-every-bytes", "0"]),
    ]
    columns = list(results[0].keys())
    print(" | ".join(columns))
    for result in results:
        print(" | ".join(str(result[column]) for column in columns))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
