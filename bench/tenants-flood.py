#!/usr/bin/env python3
"""tenants-flood.py - does a well-behaved tenant keep its latency while another floods?

Against a running cluster, release build, on this machine:

  rafting (default): a `rafting dev --secure` cluster, as the administrator (--admin-token,
    default: the contents of .rafting-dev/admin.token). It creates tenants `bench-b` (no caps)
    and `bench-a` (the default caps of a new tenant: 1,000 writes/s, 4 MiB written/s, 64 MiB,
    10,000 keys; or --a-caps), or reuses them with new tokens.
  etcd (--system etcd): the local cluster of bench/etcd-cluster.sh. etcd has no tenants, so
    "A" and "B" are just two clients of the same cluster, which is the point of comparing.

  1. baseline: B sends a steady --rate (200) puts/s of 100-byte values on --b-connections (4)
     keep-alive connections to the leader for --duration seconds, timing each put;
  2. flood: the same B load while A floods with wrk (its own process, as the issue asks): puts
     of --a-value-bytes (256 KiB, the largest value) on --a-connections (64) connections,
     cycling over 50 keys per wrk thread (bench/rafting-put.lua or bench/etcd-put.lua).

It prints B's puts/s, p50/p99/max and errors (there should be none) in both runs, and what A
got (wrk's requests, and how many were refused). Needs `wrk`; loopback only; bounded time.

  bench/tenants-flood.py --duration 10
  bench/tenants-flood.py --system etcd --endpoint http://127.0.0.1:22379
"""

import argparse
import base64
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

DURATION_MAX_SECONDS = 300
CONNECTIONS_MAX = 512
HERE = os.path.dirname(os.path.abspath(__file__))


def connect(endpoint):
    url = urllib.parse.urlparse(endpoint)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=30)


def call(connection, method, path, token, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def rafting_leader(endpoint, admin):
    status, payload = call(connect(endpoint), "GET", "/v1/cluster", admin)
    if status != 200:
        sys.exit(f"GET /v1/cluster: {status} {payload[:200]!r}")
    cluster = json.loads(payload)
    for node in cluster["nodes"]:
        if node.get("id") == cluster["leader"]:
            return "http://" + node["http"]
    return endpoint


def etcd_leader(endpoint):
    """The client URL of etcd's leader (from the status of the given member)."""
    status, payload = call(connect(endpoint), "POST", "/v3/maintenance/status", None, b"{}")
    if status != 200:
        sys.exit(f"etcd status: {status} {payload[:200]!r}")
    leader = json.loads(payload)["leader"]
    status, payload = call(connect(endpoint), "POST", "/v3/cluster/member/list", None, b"{}")
    for member in json.loads(payload)["members"]:
        if member["ID"] == leader:
            return member["clientURLs"][0]
    return endpoint


def tenant_token(endpoint, admin, name, caps):
    connection = connect(endpoint)
    body = {"name": name} if caps is None else {"name": name, "caps": caps}
    status, payload = call(connection, "POST", "/v1/tenants", admin, json.dumps(body))
    if status == 201:
        return json.loads(payload)["token"]
    if caps is not None:
        call(connection, "PUT", f"/v1/tenants/{name}", admin, json.dumps(caps))
    status, payload = call(connection, "POST", f"/v1/tenants/{name}/tokens", admin)
    if status != 201:
        sys.exit(f"cannot get a token for {name}: {status} {payload[:200]!r}")
    return json.loads(payload)["token"]


def put_request(system, token, key, value):
    """(method, path, token, body) of one put of B."""
    if system == "etcd":
        body = json.dumps({
            "key": base64.b64encode(key.encode()).decode(),
            "value": base64.b64encode(value).decode(),
        })
        return "POST", "/v3/kv/put", None, body
    return "PUT", f"/v1/kv{key}", token, value


def steady(system, endpoint, token, rate, connections, duration, results):
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
            method, path, put_token, body = put_request(
                system, token, f"/b/{index}/{sequence % 100}", value
            )
            started = time.monotonic()
            try:
                status, payload = call(connection, method, path, put_token, body)
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


def flood(system, endpoint, token, connections, value_bytes, duration):
    """Starts wrk as tenant A; returns the process (its output is wrk's report)."""
    script = os.path.join(HERE, "etcd-put.lua" if system == "etcd" else "rafting-put.lua")
    environment = dict(os.environ, VALUE_SIZE=str(value_bytes), KEYS="50", KEY_PREFIX="a")
    if token:
        environment["TOKEN"] = token
    command = [
        "wrk", "-t2", f"-c{connections}", f"-d{duration:.0f}s", "--timeout", "10s",
        "-s", script, endpoint,
    ]
    return subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


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


def report_flood(output, duration):
    requests = re.search(r"(\d+) requests in", output)
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if not requests:
        print("A (wrk) printed no summary:\n" + output)
        return
    total = int(requests.group(1))
    refused = int(refused.group(1)) if refused else 0
    print(
        f"A (wrk): {total / duration:.0f} requests/s, {(total - refused) / duration:.1f} "
        f"accepted/s, {refused / duration:.0f} refused/s"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=["rafting", "etcd"], default="rafting")
    parser.add_argument("--endpoint", default=None)
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
    if not 0 < arguments.a_connections + arguments.b_connections <= CONNECTIONS_MAX:
        sys.exit(f"at most {CONNECTIONS_MAX} connections in all")
    system = arguments.system
    if system == "etcd":
        leader = etcd_leader(arguments.endpoint or "http://127.0.0.1:22379")
        token_a = token_b = None
    else:
        admin = arguments.admin_token
        if admin is None:
            with open(".rafting-dev/admin.token") as file:
                admin = file.read().strip()
        leader = rafting_leader(arguments.endpoint or "http://127.0.0.1:8001", admin)
        token_b = tenant_token(leader, admin, "bench-b", {})
        a_caps = json.loads(arguments.a_caps) if arguments.a_caps else None
        token_a = tenant_token(leader, admin, "bench-a", a_caps)
    print(f"{system}, leader {leader}")

    duration = arguments.duration
    alone = {"latencies": [], "errors": []}
    steady(system, leader, token_b, arguments.rate, arguments.b_connections, duration, alone)
    report("alone", alone, duration)

    flooder = flood(
        system, leader, token_a, arguments.a_connections, arguments.a_value_bytes, duration
    )
    flooded = {"latencies": [], "errors": []}
    steady(system, leader, token_b, arguments.rate, arguments.b_connections, duration, flooded)
    output, _ = flooder.communicate(timeout=duration + 60)
    report("while A floods", flooded, duration)
    report_flood(output, duration)


if __name__ == "__main__":
    main()
