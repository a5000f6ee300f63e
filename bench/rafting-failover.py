#!/usr/bin/env python3
"""rafting-failover.py - the RAFTiNG twin of etcd-failover.py.

Starts 3 `rafting node` processes on loopback (heartbeat 100 ms, election 1000-2000 ms unless
overridden: the same settings as etcd's --heartbeat-interval 100 --election-timeout 1000, whose
randomized timeout also lies in [1000, 2000) ms), then per round: kill -9 the leader and time
(a) until a surviving node reports a NEW leader and (b) until a put through a surviving node
succeeds again (following the 307 to the leader, as `curl -L` does). Polls every 20 ms and fires
a new put every 20 ms without waiting for earlier ones, exactly like the etcd script. Restarts the
killed node and waits for all three to converge before the next round.

Usage: bench/rafting-failover.py [ROUNDS=5]
Env: POLL_MS (20), BASE (/tmp/rafting-failover), BIN (target/release/rafting),
     HEARTBEAT (100), ELECTION_MIN (1000), ELECTION_MAX (2000), NODE_EXTRA (extra node flags)
"""
import http.client, json, os, shutil, signal, subprocess, sys, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("BIN", os.path.join(HERE, "..", "target", "release", "rafting"))
BASE = os.environ.get("BASE", "/tmp/rafting-failover")
POLL = float(os.environ.get("POLL_MS", "20")) / 1000
HEARTBEAT = os.environ.get("HEARTBEAT", "100")
ELECTION_MIN = os.environ.get("ELECTION_MIN", "1000")
ELECTION_MAX = os.environ.get("ELECTION_MAX", str(2 * int(ELECTION_MIN)))
NODE_EXTRA = os.environ.get("NODE_EXTRA", "").split()
HTTP = {1: 28001, 2: 28002, 3: 28003}
UDP = {1: 28101, 2: 28102, 3: 28103}
PROCS = {}


def node_command(i):
    cmd = [BIN, "node", "--id", str(i), "--data", f"{BASE}/node-{i}",
           "--udp", f"127.0.0.1:{UDP[i]}", "--http", f"127.0.0.1:{HTTP[i]}",
           "--heartbeat-interval-ms", HEARTBEAT,
           "--election-timeout-ms-min", ELECTION_MIN, "--election-timeout-ms-max", ELECTION_MAX]
    for j in HTTP:
        if j != i:
            cmd += ["--peer", f"{j}=127.0.0.1:{UDP[j]},127.0.0.1:{HTTP[j]}"]
    return cmd + NODE_EXTRA


def start(i):
    log = open(f"{BASE}/node-{i}.stderr", "ab")
    PROCS[i] = subprocess.Popen(node_command(i), stdout=subprocess.DEVNULL, stderr=log,
                                stdin=subprocess.DEVNULL)


def request(method, port, path, body=None, timeout=0.5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body)
        r = c.getresponse()
        return r.status, r.getheader("Location"), r.read().decode(errors="replace")
    finally:
        c.close()


def status(i, timeout=0.5):
    """(leader id or None, own id, commit index, applied index)"""
    s, _, b = request("GET", HTTP[i], "/v1/status", timeout=timeout)
    j = json.loads(b)
    return j["leader"], j["id"], j["commit_index"], j["applied_index"]


def leader():
    for i in HTTP:
        try:
            ld, me, _, _ = status(i)
            if ld == me:
                return i
        except Exception:
            pass
    return None


def wait_converged(timeout=30):
    """all 3 nodes up, agree on a leader, same applied index."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            st = [status(i) for i in HTTP]
            if len({s[0] for s in st}) == 1 and st[0][0] is not None and len({s[3] for s in st}) == 1:
                return True
        except Exception:
            pass
        time.sleep(0.1)
    return False


def put(port, path, body, timeout):
    """PUT following one 307 to the leader, as `curl -L` does."""
    s, location, b = request("PUT", port, path, body, timeout)
    if s == 307 and location:
        hostport = location.split("//", 1)[1].split("/", 1)[0]
        s, _, b = request("PUT", int(hostport.rsplit(":", 1)[1]), path, body, timeout)
    return s, b


def one_round(i):
    lname = leader()
    survivors = [n for n in HTTP if n != lname]
    res = {"killed": lname, "t_leader": None, "t_put": None, "new_leader": None, "attempts": []}
    stop = threading.Event()

    def poll_leader():
        while not stop.is_set() and res["t_leader"] is None:
            t = time.perf_counter()
            for n in survivors:
                try:
                    ld, _, _, _ = status(n, 0.3)
                    if ld not in (None, lname):
                        res["t_leader"] = time.perf_counter() - t0
                        res["new_leader"] = ld
                        break
                except Exception:
                    pass
            time.sleep(max(0, POLL - (time.perf_counter() - t)))

    attempts = []  # [start_s, end_s or None, ok, msg]  (times relative to the kill)
    lock = threading.Lock()

    def attempt(k):
        rec = [time.perf_counter() - t0, None, False, ""]
        with lock:
            attempts.append(rec)
        try:
            # alternate between the two survivors; each attempt has its own connection and a 3 s timeout
            s, b = put(HTTP[survivors[k % 2]], f"/v1/kv/failover/{i}/{k}", "x" * 100, 3)
            rec[2] = s == 200
            rec[3] = "ok" if rec[2] else f"HTTP {s} {b[:60]}"
        except Exception as e:
            rec[3] = type(e).__name__
        rec[1] = time.perf_counter() - t0
        if rec[2]:
            with lock:
                if res["t_put"] is None or rec[1] < res["t_put"]:
                    res["t_put"] = rec[1]

    def poll_put():
        k, workers = 0, []
        while not stop.is_set() and res["t_put"] is None and k < 1000:
            k += 1
            w = threading.Thread(target=attempt, args=(k,), daemon=True)
            w.start()
            workers.append(w)
            time.sleep(POLL)
        for w in workers:
            w.join(4)
        res["attempts"] = attempts

    th = [threading.Thread(target=poll_leader), threading.Thread(target=poll_put)]
    t0 = time.perf_counter()
    PROCS[lname].send_signal(signal.SIGKILL)
    for t in th:
        t.start()
    for t in th:
        t.join(15)
    stop.set()
    PROCS[lname].wait()
    start(lname)  # restart the killed node from its log and let it catch up
    return res, wait_converged()


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    shutil.rmtree(BASE, ignore_errors=True)
    os.makedirs(BASE)
    for i in HTTP:
        start(i)
    try:
        if not wait_converged(20):
            sys.exit(f"cluster not converged; see {BASE}/node-*.stderr")
        print(f"RAFTiNG 3 nodes, heartbeat {HEARTBEAT} ms, election {ELECTION_MIN}-{ELECTION_MAX} ms "
              f"{' '.join(NODE_EXTRA)}", flush=True)
        rows = []
        for i in range(1, rounds + 1):
            time.sleep(2)  # steady state (heartbeats flowing) before the kill
            r, ok = one_round(i)
            rows.append(r)
            print(f"round {i}: killed leader n{r['killed']} -> new leader n{r['new_leader']} seen after "
                  f"{r['t_leader'] * 1000 if r['t_leader'] else float('nan'):.0f} ms; first successful put after "
                  f"{r['t_put'] * 1000 if r['t_put'] else float('nan'):.0f} ms; restarted, converged={ok}", flush=True)
            at = r["attempts"]
            fails = {}
            for a in at:
                if not a[2]:
                    fails[a[3]] = fails.get(a[3], 0) + 1
            print(f"   put attempts: {len(at)} issued, {sum(a[2] for a in at)} ok, failures {fails}", flush=True)
        tl = sorted(r["t_leader"] * 1000 for r in rows if r["t_leader"])
        tp = sorted(r["t_put"] * 1000 for r in rows if r["t_put"])
        if tl and tp:
            print(f"SUMMARY new-leader ms: min={tl[0]:.0f} median={tl[len(tl)//2]:.0f} max={tl[-1]:.0f} all={[round(x) for x in tl]}")
            print(f"SUMMARY put-ok     ms: min={tp[0]:.0f} median={tp[len(tp)//2]:.0f} max={tp[-1]:.0f} all={[round(x) for x in tp]}")
    finally:
        for p in PROCS.values():
            p.send_signal(signal.SIGTERM)
        for p in PROCS.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
