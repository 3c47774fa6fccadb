"""hpxd's HTTP doors against a bare twisted.web server: calls per server CPU-second.

    python bench/http_doors.py [--clients 32] [--seconds 10] [--rounds 3] [--doors ajax,api]

Starts, in the same run, a real ``twistd -n hpxd`` daemon (demo app, memory
backend, only the web door, on a free port) and the bare baseline
(bench/bare_http_server.py: twisted.web resources doing the same JSON work
and nothing else). The bench logs in to hpxd once (``POST /session``, a
user of the bench's config) and every client sends that cookie, so each
call takes the path of a logged-in browser: the cookie's session read,
the Origin check (the clients send the page's ``Origin``), privileges,
dispatch, metrics. The function is the demo's ``catalog.test(a, b)``
(a + b, refused to guests), on two doors:

    ajax   POST /ajax/catalog.test, urlencoded a=%00<a>&b=%00<b>
           (Heapkeeper's client: each value '\\x00' + JSON) -> a + b
    api    POST /api, Jam.py's ["server", task_id, item_id, ["test", [a, b]], mod]
           -> {"result": {"status": 9, "data": [a + b, ""], ...}, "error": null}

Each client is one HTTP/1.1 keep-alive connection with one call
outstanding; requests are encoded once and replies compared byte for byte
once the first one was checked. No client sends ``Accept-Encoding``, so
neither server compresses. ``/api`` is measured only when this tree has
the Jam.py door (``"api"`` in ``hpxd.doors.WEB_RESOURCES``).

Rounds are interleaved as in bench/tcp.py (whose round, pinning and
summary code this reuses): for each door, bare and hpxd alternate, the
order reversed every other round. The summary gives each door's calls/s
and calls per server CPU-second, and hpxd/bare. Every process this script
starts is stopped on exit, on errors and on Ctrl-C. Exit status 0 when
every round completed with right answers.
"""

import argparse
import asyncio
import http.client
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tcp as tcp_bench  # bench/tcp.py: servers, pinning, rounds and summary
import ws as ws_bench  # bench/ws.py: the hpxd daemon with only the web door
from tcp import HOST, BenchError

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CALLS_PER_CLIENT = 16  # distinct pre-encoded requests each client cycles through
DOORS = ("ajax", "api")
USER, PASSWORD = "bench", "bench-password"
# Item ids of the demo app (hpxd.demo): the task is item 1, catalog item 2
# (ids are given in the order items are made). Jam.py's client sends them.
TASK_ID, CATALOG_ID = 1, 2
MODIFICATION = 0  # Jam.py's task.modification as the client last saw it
TARGET = 0.7


# -- the calls ---------------------------------------------------------------------

class Call:
    """One pre-encoded request, the answer it must get, and (once one was
    checked) the exact body of that answer."""

    __slots__ = ("request", "expected", "kind", "body")

    def __init__(self, kind, port, cookie, a, b):
        self.kind, self.expected, self.body = kind, a + b, None
        if kind == "ajax":
            path, content_type = "/ajax/catalog.test", "application/x-www-form-urlencoded"
            payload = f"a=%00{a}&b=%00{b}".encode("ascii")
        else:
            path, content_type = "/api", "application/json"
            payload = json.dumps(["server", TASK_ID, CATALOG_ID, ["test", [a, b]],
                                  MODIFICATION]).encode("utf-8")
        self.request = (f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                        f"Origin: http://{HOST}:{port}\r\nCookie: hpxd_session={cookie}\r\n"
                        f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
                        "\r\n").encode("ascii") + payload

    def right(self, body):
        """Is ``body`` the right answer? (Parsed only until one was seen.)"""
        if body == self.body:
            return True
        try:
            value = json.loads(body)
            if self.kind == "ajax":
                ok = value == self.expected
            else:
                result = value["result"]
                ok = (value["error"] is None and result["status"] == 9
                      and result["data"][0] == self.expected
                      and result["data"][1] in (None, "") and len(result["data"]) == 2)
        except (ValueError, KeyError, TypeError):
            ok = False
        if ok:
            self.body = body
        return ok


def content_length(head):
    start = head.find(b"\r\nContent-Length: ")
    if start < 0:
        start = head.lower().find(b"\r\ncontent-length:")
        if start < 0:
            return None
    start = head.index(b":", start) + 1
    end = head.find(b"\r\n", start)
    return int(head[start:] if end < 0 else head[start:end])


def dechunked(buffer, start):
    """``(body, end)`` of a chunked body starting at ``start`` (no trailers),
    or ``(None, None)`` until all of it has arrived."""
    body, pos = [], start
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None, None
        size = int(buffer[pos:line_end].split(b";")[0], 16)
        if size == 0:
            if len(buffer) < line_end + 4:
                return None, None
            return b"".join(body), line_end + 4
        if len(buffer) < line_end + 2 + size + 2:
            return None, None
        body.append(buffer[line_end + 2:line_end + 2 + size])
        pos = line_end + 2 + size + 2


# -- the load generator (worker process) ---------------------------------------------

class LoadClient(tcp_bench.Ending, asyncio.Protocol):
    """One keep-alive connection making one door's calls in a loop: the
    interface bench/tcp.py's ``run_clients`` drives."""

    def __init__(self, start_at, end_at, done, rng, kind, port, cookie):
        self.start_at, self.end_at = start_at, end_at
        self.done = done
        self.calls = 0       # answered right inside the measured window
        self.errors = 0      # wrong or error answers (any time)
        self.latencies = []  # seconds, inside the window
        self.state = "connecting"
        self.calls_to_make = [Call(kind, port, cookie, rng.randrange(10**6),
                                   rng.randrange(10**6)) for _ in range(CALLS_PER_CLIENT)]
        self.index = 0
        self.buffer = b""
        self.sent_at = 0.0

    def connection_made(self, transport):
        self.transport = transport
        self.state = "running"
        self.send()

    def data_received(self, data):
        buffer = self.buffer + data if self.buffer else data
        while self.state == "running":
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            length = content_length(head)
            if length is not None:
                total = end + 4 + length
                if len(buffer) < total:
                    break
                body, buffer = buffer[end + 4:total], buffer[total:]
            elif b"chunked" in head.lower():
                body, total = dechunked(buffer, end + 4)
                if body is None:
                    break
                buffer = buffer[total:]
            else:
                return self.fail(f"a reply with neither Content-Length nor chunks: {head[:300]!r}")
            self.answered(head, body)
        self.buffer = buffer

    def answered(self, head, body):
        now = time.time()
        call = self.calls_to_make[self.index]
        if head.startswith(b"HTTP/1.1 200 ") and call.right(body):
            if self.start_at <= now < self.end_at:
                self.calls += 1
                self.latencies.append(now - self.sent_at)
        else:
            self.errors += 1
            if self.errors == 1:
                print(f"worker: unexpected reply {head[:200]!r} {body[:300]!r}",
                      file=sys.stderr, flush=True)
        self.index = (self.index + 1) % len(self.calls_to_make)
        if now >= self.end_at:
            return self.finish()
        self.send()

    def send(self):
        self.sent_at = time.time()
        self.transport.write(self.calls_to_make[self.index].request)


# -- the servers -------------------------------------------------------------------

class HpxdDaemon(ws_bench.HpxdDaemon):
    """The web door of ``twistd -n hpxd`` (demo app, memory backend) with
    the bench's user and any 127.0.0.1 page allowed as an Origin."""

    def __init__(self, workdir):
        super().__init__(workdir, "hpxd", ("web",))

    def config_text(self):
        sys.path.insert(0, str(REPO))
        from hpxd.core.passwords import hash_password
        # A cheap hash: the bench logs in once, not to measure scrypt.
        return (super().config_text()
                + f'\n[[users]]\nname = "{USER}"\n'
                f'password_hash = "{hash_password(PASSWORD, log2_n=10)}"\nrole = "user"\n'
                ).replace('[web]\n', '[web]\nallowed_origins = ["http://127.0.0.1:*"]\n', 1)

    def log_in(self):
        """A session cookie of the bench's user."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            connection.request("POST", "/session", json.dumps({"user": USER, "password": PASSWORD}),
                               {"content-type": "application/json"})
            reply = connection.getresponse()
            reply.read()
            cookie = re.search(r"hpxd_session=([^;]+)", reply.headers.get("set-cookie") or "")
        finally:
            connection.close()
        if reply.status != 200 or not cookie:
            raise BenchError(f"hpxd refused the bench's login (HTTP {reply.status})")
        return cookie.group(1)


class BareHttpServer(tcp_bench.Server):
    label = "bare"

    def start(self):
        self.spawn([sys.executable, str(BENCH / "bare_http_server.py"), "--port", "0",
                    "--interface", HOST], tcp_bench.python_env())

        def ready(text):
            m = re.search(r"bare http server listening on [^:\s]+:(\d+)", text)
            return int(m.group(1)) if m else None
        return self.wait_for(ready)

    def log_in(self):
        return "bare-server-ignores-it"


def api_in_tree():
    """Has this tree the Jam.py door (``/api``)?"""
    registry = (REPO / "hpxd" / "doors" / "__init__.py").read_text()
    return re.search(r'^\s*"api":', registry, re.M) is not None


# -- the run ------------------------------------------------------------------------

def run(args):
    tcp_bench.set_pinning(args.pin)
    doors = list(args.doors)
    skipped = []
    if "api" in doors and not api_in_tree():
        doors.remove("api")
        skipped.append("api")
    if not doors:
        raise BenchError("/api is not in this tree (no Jam.py door yet): run with --doors ajax")
    workdir = Path(tempfile.mkdtemp(prefix="hpxd-bench-http-"))
    servers = {"bare": BareHttpServer(workdir / "bare"), "hpxd": HpxdDaemon(workdir / "hpxd")}
    try:
        for server in servers.values():
            server.start()
        cookies = {label: server.log_in() for label, server in servers.items()}
        print_header(args, servers, doors, skipped)
        rounds = {(door, label): [] for door in doors for label in servers}
        for i in range(args.rounds):
            for door in doors:
                labels = list(servers) if i % 2 == 0 else list(servers)[::-1]
                for label in labels:
                    r = tcp_bench.measure(servers[label], args, args.client_procs, seed=i,
                                          script=__file__,
                                          worker_args=("--door", door, "--cookie", cookies[label]))
                    rounds[door, label].append(r)
                    print(f"{i + 1:>5}  {'/' + door:6} {label:6} {r['rate']:>9.0f} "
                          f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['server_cpu']:>6.0%} "
                          f"{r['client_cpu']:>6.0%} {r['errors']:>6}", flush=True)
        summarize(args, doors, rounds)
        errors = sum(r["errors"] for rs in rounds.values() for r in rs)
        if errors:
            raise BenchError(f"{errors} calls got a wrong or error answer")
    finally:
        ws_bench.stop_all(servers.values(), workdir, args.keep)


def print_header(args, servers, doors, skipped):
    print(f"hpxd http bench: {args.clients} clients x {args.seconds:g} s, {args.rounds} rounds, "
          f"doors {', '.join('/' + d for d in doors)}, {args.client_procs} client process(es), "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"load average {tcp_bench.load_average()}")
    for door in skipped:
        print(f"  /{door}: not in this tree, skipped")
    if tcp_bench.SERVER_CPUS is not None:
        print(f"  pinned: servers on CPU {sorted(tcp_bench.SERVER_CPUS)}, clients on CPU "
              f"{sorted(tcp_bench.OTHER_CPUS)} (--no-pin to let the kernel place them)")
    for label, server in servers.items():
        print(f"  {label:6} pid {server.proc.pid} on http://{HOST}:{server.port}/")
    print()
    print(f"{'round':>5}  {'door':6} {'server':6} {'calls/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'srv CPU':>7} {'cli CPU':>7} {'errors':>6}")


def summarize(args, doors, rounds):
    print()
    print(f"summary ({time.strftime('%Y-%m-%d')}, {args.clients} clients, {args.seconds:g} s x "
          f"{args.rounds} rounds, median of rounds; load average now {tcp_bench.load_average()})")
    print(f"  {'door':6} {'server':6} {'calls/s':>9} {'calls/CPU-s':>12} {'srv CPU':>7} "
          f"{'p50 ms':>7}")
    rate, per_cpu = {}, {}
    for (door, label), rs in rounds.items():
        rate[door, label] = statistics.median(r["rate"] for r in rs)
        per_cpu[door, label] = statistics.median(r["rate"] / r["server_cpu"] for r in rs
                                                 if r["server_cpu"]) if any(
            r["server_cpu"] for r in rs) else float("nan")
        print(f"  {'/' + door:6} {label:6} {rate[door, label]:>9.0f} "
              f"{per_cpu[door, label]:>12.0f} "
              f"{statistics.median(r['server_cpu'] for r in rs):>6.0%} "
              f"{statistics.median(r['p50_ms'] for r in rs):>7.2f}")
    busiest = max(r["client_cpu"] for rs in rounds.values() for r in rs)
    print(f"  load generator: {args.client_procs} process(es), busy "
          f"{statistics.median(r['client_cpu'] for rs in rounds.values() for r in rs):.0%} "
          f"of one core (median of rounds, busiest {busiest:.0%})")
    for door in doors:
        ratio = per_cpu[door, "hpxd"] / per_cpu[door, "bare"]
        print(f"  /{door:5} ratio hpxd/bare {rate[door, 'hpxd'] / rate[door, 'bare']:.2f}  "
              f"(per server CPU-second {ratio:.2f}; target >= {TARGET:.2f}: "
              f"{'met' if ratio >= TARGET else 'NOT met'})")


# -- command line -------------------------------------------------------------------

def door_list(text):
    doors = [d.strip().lstrip("/") for d in text.split(",") if d.strip()]
    unknown = [d for d in doors if d not in DOORS]
    if unknown or not doors:
        raise argparse.ArgumentTypeError(f"doors are a comma-separated subset of {DOORS}")
    return doors


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Calls per server CPU-second of hpxd's /ajax and /api vs bare twisted.web.")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections (32)")
    parser.add_argument("--seconds", type=float, default=10, help="length of one round (10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server and door (3)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of calls before each round's window (1)")
    parser.add_argument("--doors", type=door_list, default=list(DOORS),
                        help="which doors: ajax, api or both (ajax,api)")
    parser.add_argument("--client-procs", type=int, default=1,
                        help="load generator processes sharing the clients (1)")
    parser.add_argument("--keep", action="store_true", help="keep the servers' logs")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin the server to CPU 0 and the clients to the others")
    tcp_bench.add_worker_args(parser)  # worker mode, used by bench/tcp.py's measure()
    parser.add_argument("--door", choices=DOORS, help=argparse.SUPPRESS)  # worker: which door
    parser.add_argument("--cookie", help=argparse.SUPPRESS)  # worker: the session cookie
    args = parser.parse_args(argv)
    if not args.worker:
        check_args(parser, args)
    return args


def check_args(parser, args):
    if not 1 <= args.clients <= 1000:
        parser.error("--clients must be between 1 and 1000")
    if not 0 < args.seconds <= 600:
        parser.error("--seconds must be in (0, 600]")
    if not 0 <= args.warmup <= 60:
        parser.error("--warmup must be between 0 and 60")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    if not 1 <= args.client_procs <= min(8, args.clients):
        parser.error("--client-procs must be between 1 and min(8, --clients)")


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return tcp_bench.worker_main(args, client=lambda start_at, end_at, done, rng: LoadClient(
            start_at, end_at, done, rng, args.door, args.port, args.cookie))
    return tcp_bench.run_main("bench/http_doors.py", run, args)


if __name__ == "__main__":
    sys.exit(main())
