#!/usr/bin/env python3
"""services-vs-etcd.py - master/standby handover, RAFTiNG's service groups next to etcd's
election API, on this machine, in one run.

RAFTiNG (a 3-node `rafting dev` cluster, release build): per round, two `rafting service join`
processes (a, then b as standby) in a fresh group;
  graceful: SIGTERM the master -> from its "resigning" line to b's "master" line;
  brutal:   kill -9 the master (TTL 1000 ms) -> time until b prints "master".
etcd 3.4 (bench/etcd-cluster.sh, 3 nodes): the same two rounds with two campaigners on the v3
JSON gateway's election API, each with its own lease of TTL 1 s (etcd's minimum) kept alive
every 300 ms by the campaigner;
  graceful: the leader resigns (/v3/election/resign) -> time until b's campaign returns;
  brutal:   the leader stops keeping its lease alive (as a killed process would) -> time until
            b's campaign returns.

Prints median and p99 per system and the ratio. Needs etcd-server + etcd-client for the etcd
half (skipped if absent). Data under /tmp only.
Env: ROUNDS (50 graceful, 10 brutal: BRUTAL_ROUNDS), PORT (18101).
"""
import base64
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
ROUNDS = int(os.environ.get("ROUNDS", "50"))
BRUTAL_ROUNDS = int(os.environ.get("BRUTAL_ROUNDS", "10"))
PORT = int(os.environ.get("PORT", "18101"))
BIN = os.path.join(ROOT, "target", "release", "rafting")


def http(method, url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summary(name, values):
    return f"{name:34s} n={len(values):3d} median={statistics.median(values):8.1f} ms p99={percentile(values, 99):8.1f} ms"


class Join:
    """A `rafting service join` process and its output lines."""

    def __init__(self, endpoint, group, instance, ttl_ms):
        self.process = subprocess.Popen(
            [BIN, "service", "join", group, "--instance", instance, "--ttl-ms", str(ttl_ms),
             "--endpoint", endpoint],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines = []
        self.event = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            with self.event:
                self.lines.append((time.monotonic(), line.strip()))
                self.event.notify_all()

    def wait(self, prefix, timeout=15):
        deadline = time.monotonic() + timeout
        with self.event:
            while True:
                for at, line in self.lines:
                    if line.startswith(prefix):
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no {prefix!r} line; got {self.lines}")
                self.event.wait(left)

    def stop(self, sig=signal.SIGKILL):
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait()


def rafting():
    subprocess.run(["cargo", "build", "--release", "-p", "rafting-server",
                    "--manifest-path", os.path.join(ROOT, "Cargo.toml")], check=True,
                   stdout=sys.stderr)
    data = "/tmp/rafting-services-bench"
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
        cluster = http("GET", endpoint + "/v1/cluster")
        leader = next("http://" + n["http"] for n in cluster["nodes"] if n["id"] == cluster["leader"])
        graceful, brutal = [], []
        for round_ in range(ROUNDS + BRUTAL_ROUNDS):
            kind = "graceful" if round_ < ROUNDS else "brutal"
            group = f"/bench/{kind}-{round_}"
            a = Join(leader, group, "a", 1000)
            a.wait("master")
            b = Join(leader, group, "b", 1000)
            b.wait("standby")
            start = time.monotonic()
            if kind == "graceful":
                a.process.send_signal(signal.SIGTERM)
                resigned = a.wait("resigning")
                graceful.append((b.wait("master") - resigned) * 1000)
            else:
                a.stop(signal.SIGKILL)
                brutal.append((b.wait("master") - start) * 1000)
            a.stop()
            b.stop()
        return graceful, brutal
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait()


def b64(text):
    return base64.b64encode(text.encode()).decode()


class Campaigner:
    """One etcd election campaigner on the JSON gateway, with its own 1 s lease."""

    def __init__(self, endpoint, election, name):
        self.endpoint, self.election, self.name = endpoint, election, name
        self.lease = http("POST", endpoint + "/v3/lease/grant", {"TTL": 1})["ID"]
        self.alive = True
        self.leader_key = None
        self.won_at = None
        threading.Thread(target=self._keep_alive, daemon=True).start()
        threading.Thread(target=self._campaign, daemon=True).start()

    def _keep_alive(self):
        while self.alive:
            try:
                http("POST", self.endpoint + "/v3/lease/keepalive", {"ID": self.lease}, timeout=2)
            except Exception:
                pass
            time.sleep(0.3)

    def _campaign(self):
        answer = http("POST", self.endpoint + "/v3/election/campaign",
                      {"name": b64(self.election), "lease": self.lease, "value": b64(self.name)},
                      timeout=60)
        self.leader_key = answer["leader"]
        self.won_at = time.monotonic()

    def wait_won(self, timeout=15):
        deadline = time.monotonic() + timeout
        while self.won_at is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} never won")
            time.sleep(0.0005)
        return self.won_at


def etcd():
    if not shutil.which("etcd"):
        print("etcd not installed: skipping the etcd half", file=sys.stderr)
        return None
    script = os.path.join(HERE, "etcd-cluster.sh")
    env = dict(os.environ, BASE="/tmp/etcd-services-bench")
    subprocess.run([script, "wipe"], env=env, stdout=subprocess.DEVNULL)
    subprocess.run([script, "start", "all"], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        leader = None
        for _ in range(100):
            out = subprocess.run([script, "leader"], env=env, capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip():
                leader = out.stdout.split()[1]
                break
            time.sleep(0.2)
        graceful, brutal = [], []
        for round_ in range(ROUNDS + BRUTAL_ROUNDS):
            kind = "graceful" if round_ < ROUNDS else "brutal"
            election = f"bench-{kind}-{round_}"
            a = Campaigner(leader, election, "a")
            a.wait_won()
            b = Campaigner(leader, election, "b")
            time.sleep(0.1)
            start = time.monotonic()
            if kind == "graceful":
                http("POST", leader + "/v3/election/resign", {"leader": a.leader_key})
                graceful.append((b.wait_won() - start) * 1000)
            else:
                a.alive = False  # as if killed: its lease is no longer kept alive
                brutal.append((b.wait_won() - start) * 1000)
            a.alive = b.alive = False
        return graceful, brutal
    finally:
        subprocess.run([script, "wipe"], env=env, stdout=subprocess.DEVNULL)


def main():
    ours = rafting()
    theirs = etcd()
    print(f"master/standby handover on {os.cpu_count()} CPUs, 3-node clusters on 127.0.0.1, TTL 1000 ms")
    print(summary("RAFTiNG graceful (resign->master)", ours[0]))
    print(summary("RAFTiNG brutal (kill -9->master)", ours[1]))
    if theirs:
        print(summary("etcd graceful (resign->campaign)", theirs[0]))
        print(summary("etcd brutal (lease lapses->campaign)", theirs[1]))
        for i, kind in enumerate(["graceful", "brutal"]):
            ratio = statistics.median(theirs[i]) / max(statistics.median(ours[i]), 0.001)
            print(f"median {kind}: etcd / RAFTiNG = {ratio:.2f}")


if __name__ == "__main__":
    main()
