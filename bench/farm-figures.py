#!/usr/bin/env python3
"""farm-figures.py - two figures of farm mode on a 3-node `rafting dev` cluster (release):

1. kill -9 -> no longer picked: a farm member (here a Python stand-in that registers and keeps
   alive over REST, like `rafting_client::join_farm` does, TTL 1000 ms) stops keeping alive at
   once; time until `GET /v1/services/<farm>` (what callers' watched lists follow) no longer
   lists it. ROUNDS rounds.
2. The cluster's cost of 100 members keeping alive at TTL 1 s (a keep-alive every 333 ms each):
   the leader's CPU % (utime + stime from /proc) over WINDOW seconds, against the same window
   idle.

Env: ROUNDS (10), MEMBERS (100), WINDOW (20), PORT (18401). Data under /tmp only.
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(ROOT, "target", "release", "rafting")
ROUNDS = int(os.environ.get("ROUNDS", "10"))
MEMBERS = int(os.environ.get("MEMBERS", "100"))
WINDOW = float(os.environ.get("WINDOW", "20"))
PORT = int(os.environ.get("PORT", "18401"))


def http(method, url, body=None, timeout=5):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def leader_pid(endpoint, data):
    cluster = http("GET", endpoint + "/v1/cluster")
    leader = cluster["leader"]
    url = next("http://" + n["http"] for n in cluster["nodes"] if n["id"] == leader)
    lock = open(os.path.join(data, f"node-{leader}", "LOCK")).read()
    pid = int("".join(ch for ch in lock.split()[0] if ch.isdigit())) if lock.strip() else None
    return url, pid


def main():
    subprocess.run(["cargo", "build", "--release", "-p", "rafting-server",
                    "--manifest-path", os.path.join(ROOT, "Cargo.toml")], check=True,
                   stdout=sys.stderr)
    data = "/tmp/rafting-farm-figures"
    shutil.rmtree(data, ignore_errors=True)
    dev = subprocess.Popen([BIN, "dev", "--nodes", "3", "--http-port", str(PORT), "--data", data],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{PORT}"
        for _ in range(200):
            try:
                http("GET", endpoint + "/v1/health", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        leader, pid = leader_pid(endpoint, data)

        # 1. kill -9 -> no longer listed.
        gone_ms = []
        for round_ in range(ROUNDS):
            farm = f"{leader}/v1/services/figures-{round_}"
            for instance in ("a", "b"):
                http("POST", farm + "/members",
                     {"instance": instance, "ttl_ms": 1000, "mode": "farm"})
            stop = threading.Event()

            def keep_b_alive():
                while not stop.is_set():
                    http("PUT", farm + "/members/b/keepalive")
                    time.sleep(0.3)
            keeper = threading.Thread(target=keep_b_alive, daemon=True)
            keeper.start()
            killed = time.monotonic()  # "a" never keeps alive again: as if killed just now
            while any(m["instance"] == "a" for m in http("GET", farm)["members"]):
                time.sleep(0.005)
            gone_ms.append((time.monotonic() - killed) * 1000)
            stop.set()
            keeper.join()

        # 2. 100 members keeping alive.
        idle_before = cpu_seconds(pid) if pid else None
        time.sleep(WINDOW)
        idle_cpu = (cpu_seconds(pid) - idle_before) / WINDOW * 100 if pid else float("nan")
        farm = f"{leader}/v1/services/load"
        for index in range(MEMBERS):
            http("POST", farm + "/members",
                 {"instance": f"m{index}", "ttl_ms": 1000, "mode": "farm"})
        stop = threading.Event()
        failures = [0]

        def keep_alive(indexes):
            while not stop.is_set():
                started = time.monotonic()
                for index in indexes:
                    try:
                        http("PUT", f"{farm}/members/m{index}/keepalive")
                    except Exception:
                        failures[0] += 1
                time.sleep(max(0.0, 0.333 - (time.monotonic() - started)))
        threads = [threading.Thread(target=keep_alive, args=(range(i, MEMBERS, 10),), daemon=True)
                   for i in range(10)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        busy_before = cpu_seconds(pid) if pid else None
        time.sleep(WINDOW)
        busy_cpu = (cpu_seconds(pid) - busy_before) / WINDOW * 100 if pid else float("nan")
        stop.set()
        alive = len(http("GET", farm)["members"])

        print(f"farm figures on {os.cpu_count()} CPUs, 3-node rafting dev on 127.0.0.1")
        print(f"member stops keeping alive -> no longer listed (TTL 1000 ms), {ROUNDS} rounds: "
              f"median {statistics.median(gone_ms):.0f} ms, max {max(gone_ms):.0f} ms")
        print(f"leader CPU, idle: {idle_cpu:.1f}%; with {MEMBERS} members keeping alive every "
              f"333 ms: {busy_cpu:.1f}% ({alive} still registered, {failures[0]} failed keep-alives)")
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait()


if __name__ == "__main__":
    main()
