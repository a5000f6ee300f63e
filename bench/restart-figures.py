#!/usr/bin/env python3
"""restart-figures.py - what a snapshot buys at restart, and what a key costs in memory (issue 16).

For each of two runs of one node (release build, fsync on, data under /tmp):
- `compaction`: the defaults (a snapshot every 100,000 entries or 64 MiB);
- `no compaction`: `--snapshot-every-entries 0 --snapshot-every-bytes 0` (the log keeps
  everything, as before snapshots existed),
the script puts PUTS distinct keys with VALUE_SIZE-byte values (wrk, 64 connections,
bench/rafting-put.lua), waits until all are applied, reads the node's resident memory, kills it
with SIGKILL, starts it again on the same folder and measures:
- restart: from spawn until `/v1/health` is 200 (it has replayed what it holds and leads), and
  until a key written before the kill reads back;
- memory: VmRSS of the loaded node and of the restarted one, against the raw size of the data
  (key bytes + value bytes);
- disk: the folder's size, and how many log entries the restart had to replay (the last index
  minus the snapshot index).

Env: PUTS (1000000), VALUE_SIZE (100), PORT (18501). Needs wrk.
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


def start(data, extra):
    log = open(os.path.join(data, "stdout.log"), "ab")
    return subprocess.Popen(
        [BIN, "node", "--id", "1", "--data", os.path.join(data, "node-1"),
         "--http", f"127.0.0.1:{PORT}", "--udp", f"127.0.0.1:{PORT + 100}",
         "--initial-cluster-state", "new"] + extra,
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
    endpoint = f"http://127.0.0.1:{PORT}"
    node = start(data, extra)
    try:
        wait_until(lambda: healthy(endpoint), 20, "the first start")
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
        wait_until(lambda: (s := status(endpoint)) and s["applied_index"] >= s["commit_index"],
                   60, "everything applied")
        before = status(endpoint)
        revision = before["store_revision"]
        loaded_rss = rss_mib(node.pid)
        node.send_signal(signal.SIGKILL)
        node.wait()
        disk = folder_mib(data)

        spawned = time.monotonic()
        node = start(data, extra)
        healthy_at = wait_until(lambda: healthy(endpoint), 600, "health after the restart")
        probe = f"{endpoint}/v1/kv/restart/1/{2:010d}"  # wrk spends request 1 on a trial
        readable_at = wait_until(lambda: get(probe, timeout=1)[0] == 200, 60, "a key read back")
        after = status(endpoint)
        restarted_rss = rss_mib(node.pid)
        return {
            "run": name,
            "puts_per_s": round(revision / load_s),
            "revision": revision,
            "last_index": before["last_index"],
            "snapshot_index": after["snapshot_index"],
            "replayed_entries": before["last_index"] - after["snapshot_index"],
            "restart_health_s": round(healthy_at - spawned, 2),
            "restart_read_s": round(readable_at - spawned, 2),
            "rss_loaded_mib": round(loaded_rss),
            "rss_restarted_mib": round(restarted_rss),
            "disk_mib": round(disk),
        }
    finally:
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
