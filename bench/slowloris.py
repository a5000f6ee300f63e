#!/usr/bin/env python3
"""slowloris.py - does a well-behaved client keep its latency while idle and slowloris
connections are held against the node it writes to?

Starts one `rafting node` (a one-node cluster: it is the leader) on loopback in a temporary
directory, or uses --endpoint (a running leader on loopback, e.g. one of `rafting dev`). Then:

  1. baseline: a well-behaved client PUTs 100-byte values on one keep-alive connection, one
     after the other, for --baseline seconds;
  2. attack: --idle connections that never send a byte and --slowloris connections that send
     a partial request head and then one more header line every --trickle seconds, so the
     head never completes. Every attack connection the node closes (evicted, 408, 503) is
     opened again at once, so the counts are held for the whole run;
  3. under attack: the same client as in 1 for --duration seconds.

It prints the client's p50/p99/max latency, its errors, and what happened to the attack
connections. Python 3 standard library only; loopback only; counts and time are bounded.

  bench/slowloris.py                      # 2000 idle + 1000 slowloris, 20 s, release build
  bench/slowloris.py --endpoint http://127.0.0.1:8001 --idle 500 --slowloris 200
"""

import argparse
import errno
import http.client
import os
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ATTACK_CONNECTIONS_MAX = 6000
DURATION_MAX_SECONDS = 300
REQUEST_TIMEOUT_SECONDS = 5
VALUE = b"v" * 100


def parse_arguments():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(here, "..", "target", "release", "rafting"))
    parser.add_argument("--endpoint", help="use this running leader (loopback) instead of starting a node")
    parser.add_argument("--port", type=int, default=18401, help="HTTP port of the node started (UDP: +100)")
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--slowloris", type=int, default=1000)
    parser.add_argument("--trickle", type=float, default=1.0, help="seconds between slowloris header lines")
    parser.add_argument("--baseline", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=20.0)
    arguments = parser.parse_args()
    if arguments.idle + arguments.slowloris > ATTACK_CONNECTIONS_MAX:
        parser.error(f"at most {ATTACK_CONNECTIONS_MAX} attack connections")
    if arguments.duration + arguments.baseline > DURATION_MAX_SECONDS:
        parser.error(f"at most {DURATION_MAX_SECONDS} s in all")
    return arguments


def raise_open_files_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        sys.exit(f"need {needed} open files, the hard limit is {hard}")


def wait_for_health(host, port, deadline):
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection(host, port, timeout=1)
            connection.request("GET", "/v1/health")
            if connection.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def start_node(binary, port):
    directory = tempfile.mkdtemp(prefix="rafting-slowloris-")
    console = open(os.path.join(directory, "console.log"), "wb")
    node = subprocess.Popen(
        [binary, "node", "--id", "1", "--data", os.path.join(directory, "node-1"),
         "--http", f"127.0.0.1:{port}", "--udp", f"127.0.0.1:{port + 100}"],
        stdin=subprocess.DEVNULL, stdout=console, stderr=console)
    return node, directory


class Attack:
    """Holds the idle and slowloris connections from one thread with one epoll set."""

    def __init__(self, host, port, idle, slowloris, trickle):
        self.address = (host, port)
        self.trickle = trickle
        self.selector = selectors.DefaultSelector()
        self.counts = {"opened": 0, "closed_by_server": 0, "answered_408": 0,
                       "answered_503": 0, "connect_failed": 0}
        self.wanted = {"idle": idle, "slowloris": slowloris}
        self.open = {"idle": 0, "slowloris": 0}
        self.last_trickle = {}
        self.stop = threading.Event()

    def connect(self, kind):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(self.address)
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self.counts["connect_failed"] += 1
            return
        self.selector.register(sock, selectors.EVENT_READ, kind)
        self.open[kind] += 1
        self.counts["opened"] += 1
        if kind == "slowloris":
            self.last_trickle[sock] = time.monotonic()
            self.send(sock, b"PUT /v1/kv/slowloris HTTP/1.1\r\nHost: x\r\n")

    def send(self, sock, data):
        try:
            sock.send(data)
        except OSError:
            pass  # Not connected yet, or closed: the read side notices.

    def on_readable(self, sock, kind):
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data.startswith(b"HTTP/1.1 408"):
            self.counts["answered_408"] += 1
        elif data.startswith(b"HTTP/1.1 503"):
            self.counts["answered_503"] += 1
        elif not data:
            self.counts["closed_by_server"] += 1
        else:
            return  # More of an answer already counted; wait for the close.
        self.selector.unregister(sock)
        self.last_trickle.pop(sock, None)
        sock.close()
        self.open[kind] -= 1

    def held(self):
        return self.open["idle"] + self.open["slowloris"]

    def run(self):
        while not self.stop.is_set():
            for kind in ("slowloris", "idle"):
                # Open again what the server closed, a bounded number per turn.
                for _ in range(min(200, self.wanted[kind] - self.open[kind])):
                    self.connect(kind)
            for key, _ in self.selector.select(timeout=0.05):
                self.on_readable(key.fileobj, key.data)
            now = time.monotonic()
            for sock, last in list(self.last_trickle.items()):
                if now - last >= self.trickle:
                    self.last_trickle[sock] = now
                    self.send(sock, b"X-Slow: 1\r\n")
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()


def client_puts(host, port, seconds, label):
    """Sequential PUTs on one keep-alive connection; reconnects once per failed request."""
    latencies, errors, retried = [], 0, 0
    connection = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT_SECONDS)
    deadline = time.monotonic() + seconds
    index = 0
    while time.monotonic() < deadline:
        index += 1
        path = f"/v1/kv/bench/{label}/{index}"
        started = time.monotonic()
        status = None
        for attempt in range(2):
            try:
                connection.request("PUT", path, body=VALUE)
                response = connection.getresponse()
                response.read()
                status = response.status
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The keep-alive connection was closed between requests (evicted while idle):
                # any HTTP client opens a new one and sends again.
                connection.close()
                retried += attempt == 0
            except OSError:
                connection.close()
                break
        elapsed_ms = (time.monotonic() - started) * 1000
        if status == 200:
            latencies.append(elapsed_ms)
        else:
            errors += 1
            connection.close()
    connection.close()
    return latencies, errors, retried


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(label, latencies, errors, retried, seconds):
    if not latencies:
        print(f"{label}: no successful put; errors {errors}")
        return
    print(f"{label}: {len(latencies)} puts in {seconds:.0f} s, "
          f"p50 {statistics.median(latencies):.2f} ms, p99 {percentile(latencies, 0.99):.2f} ms, "
          f"max {max(latencies):.2f} ms, errors {errors}, reconnected {retried}")


def main():
    arguments = parse_arguments()
    raise_open_files_limit(arguments.idle + arguments.slowloris + 64)
    node = directory = None
    if arguments.endpoint:
        url = urllib.parse.urlsplit(arguments.endpoint)
        host, port = url.hostname, url.port or 80
        if not host.startswith("127.") and host != "localhost":
            sys.exit("--endpoint must be on loopback")
    else:
        host, port = "127.0.0.1", arguments.port
        node, directory = start_node(arguments.binary, port)
    try:
        if not wait_for_health(host, port, time.monotonic() + 30):
            sys.exit(f"no healthy node on {host}:{port}")
        report("baseline", *client_puts(host, port, arguments.baseline, "baseline"), arguments.baseline)
        attack = Attack(host, port, arguments.idle, arguments.slowloris, arguments.trickle)
        thread = threading.Thread(target=attack.run, daemon=True)
        thread.start()
        time.sleep(3)  # Let the attack connections open (and the first round get evicted).
        print(f"attack: {arguments.idle} idle + {arguments.slowloris} slowloris wanted, "
              f"{attack.held()} open by the client side now")
        result = client_puts(host, port, arguments.duration, "attack")
        report("under attack", *result, arguments.duration)
        print("attack connections:", ", ".join(f"{k} {v}" for k, v in attack.counts.items()))
        attack.stop.set()
        thread.join()
    finally:
        if node is not None:
            node.terminate()
            node.wait(timeout=20)
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
