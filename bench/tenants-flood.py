#!/usr/bin/env python3
"""tenants-flood.py - does a well-behaved tenant keep its latency while another floods?

Against a running cluster with tenants on (`rafting dev --secure`, release build), as the
administrator (--admin-token, default: the contents of .rafting-dev/admin.token):

  1. creates tenants `bench-b` (no caps) and `bench-a` (the default caps for new tenants:
     1,000 writes/s, burst 2,000, 64 MiB, 10,000 keys), or reuses them with new tokens;
  2. baseline: tenant B sends a steady --rate (200) puts/s of 100-byte values on --b-connections
     (4) keep-alive connections to the leader for --duration seconds, measuring each put;
  3. flood: the same B load while tenant A sends puts of --a-value-bytes (256 KiB, the largest
     value) as fast as --a-connections (64) threads can, for --duration seconds.

It prints B's p50/p99/max and throughput in both runs, B's errors (there should be none), and
what A got: puts accepted, 403 quota_* and 429 rate_* refusals. Python 3 standard library
only; loopback only; time and threads are bounded.

  bench/tenants-flood.py --endpoint http://127.0.0.1:8001
"""

import argparse
import collections
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

DURATION_MAX_SECONDS = 300
THREADS_MAX = 512


def connect(endpoint):
    url = urllib.parse.urlparse(endpoint)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=30)


def call(connection, method, path, token, body=None):
    headers = {"Authorization": f"Bearer {token}"}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    return response.status, payload, response.getheader("Location")


def leader_endpoint(endpoint, admin):
    connection = connect(endpoint)
    status, payload, _ = call(connection, "GET", "/v1/cluster", admin)
    if status != 200:
        sys.exit(f"GET /v1/cluster: {status} {payload[:200]!r}")
    cluster = json.loads(payload)
    for node in cluster["nodes"]:
        if node.get("id") == cluster["leader"]:
            return "http://" + node["http"]
    return endpoint


def tenant_token(endpoint, admin, name, caps):
    connection = connect(endpoint)
    body = {"name": name} if caps is None else {"name": name, "caps": caps}
    status, payload, _ = call(connection, "POST", "/v1/tenants", admin, json.dumps(body))
    if status == 201:
        return json.loads(payload)["token"]
    if caps is not None:
        call(connection, "PUT", f"/v1/tenants/{name}", admin, json.dumps(caps))
    status, payload, _ = call(connection, "POST", f"/v1/tenants/{name}/tokens", admin)
    if status != 201:
        sys.exit(f"cannot get a token for {name}: {status} {payload[:200]!r}")
    return json.loads(payload)["token"]


def steady(endpoint, token, rate, connections, duration, results):
    """`rate` puts/s spread over `connections` threads, each put timed."""
    interval = connections / rate
    stop_at = time.monotonic() + duration

    def worker(index):
        connection = connect(endpoint)
        value = b"b" * 100
        next_at = time.monotonic() + index * interval / connections
        sequence = 0
        while True:
            now = time.monotonic()
            if now >= stop_at:
                return
            if next_at > now:
                time.sleep(next_at - now)
            next_at += interval
            sequence += 1
            started = time.monotonic()
            try:
                status, payload, _ = call(
                    connection, "PUT", f"/v1/kv/b/{index}/{sequence % 100}", token, value
                )
            except OSError as error:
                results["errors"].append(str(error))
                connection = connect(endpoint)
                continue
            elapsed = time.monotonic() - started
            if status == 200:
                results["latencies"].append(elapsed)
            else:
                results["errors"].append(f"{status} {payload[:120]!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def flood(endpoint, token, connections, value_bytes, duration, counts):
    stop_at = time.monotonic() + duration
    lock = threading.Lock()

    def worker(index):
        connection = connect(endpoint)
        value = b"a" * value_bytes
        sequence = 0
        while time.monotonic() < stop_at:
            sequence += 1
            try:
                status, payload, _ = call(
                    connection, "PUT", f"/v1/kv/a/{index}/{sequence % 50}", token, value
                )
                code = json.loads(payload).get("code", "ok") if payload[:1] == b"{" else "ok"
            except (OSError, ValueError, http.client.HTTPException):
                connection = connect(endpoint)
                code = "connection_error"
                status = 0
            with lock:
                counts[f"{status} {code}"] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    return threads


def report(label, results, duration):
    latencies = sorted(results["latencies"])
    if not latencies:
        print(f"{label}: no successful put; errors: {results['errors'][:5]}")
        return
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(
        f"{label}: B {len(latencies) / duration:.0f} puts/s, p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms, max {latencies[-1] * 1000:.1f} ms, errors {len(results['errors'])}"
    )
    for error in results["errors"][:5]:
        print(f"  error: {error}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="http://127.0.0.1:8001")
    parser.add_argument("--admin-token", default=None)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--b-connections", type=int, default=4)
    parser.add_argument("--a-connections", type=int, default=64)
    parser.add_argument("--a-value-bytes", type=int, default=256 * 1024)
    parser.add_argument(
        "--a-caps", default=None,
        help="tenant A's caps as JSON (default: the defaults for new tenants)",
    )
    arguments = parser.parse_args()
    if not 0 < arguments.duration <= DURATION_MAX_SECONDS:
        sys.exit(f"--duration must be in (0, {DURATION_MAX_SECONDS}]")
    if not 0 < arguments.a_connections + arguments.b_connections <= THREADS_MAX:
        sys.exit(f"at most {THREADS_MAX} connections in all")
    admin = arguments.admin_token
    if admin is None:
        with open(".rafting-dev/admin.token") as file:
            admin = file.read().strip()
    leader = leader_endpoint(arguments.endpoint, admin)
    token_b = tenant_token(leader, admin, "bench-b", {})
    a_caps = json.loads(arguments.a_caps) if arguments.a_caps else None
    token_a = tenant_token(leader, admin, "bench-a", a_caps)

    alone = {"latencies": [], "errors": []}
    steady(leader, token_b, arguments.rate, arguments.b_connections, arguments.duration, alone)
    report("alone", alone, arguments.duration)

    counts = collections.Counter()
    flooders = flood(
        leader, token_a, arguments.a_connections, arguments.a_value_bytes,
        arguments.duration, counts,
    )
    flooded = {"latencies": [], "errors": []}
    steady(leader, token_b, arguments.rate, arguments.b_connections, arguments.duration, flooded)
    for thread in flooders:
        thread.join()
    report("while A floods", flooded, arguments.duration)
    print("A got: " + ", ".join(f"{key}: {value}" for key, value in sorted(counts.items())))


if __name__ == "__main__":
    main()
