"""The form door's load and save against a bare twisted.web server: requests
per server CPU-second.

    python bench/forms.py [--clients 4] [--seconds 10] [--rounds 3] [--endpoints load,save]

Starts, in the same run, a real ``twistd -n hpxd`` daemon (demo app, memory
backend, only the web door, records in SQLite in a temporary data_dir) and
the bare baseline (bench/bare_forms_server.py: twisted.web resources doing
the same SQL through SQLAlchemy Core in a thread pool, and no session, SIP,
rules, validation or lock; its own SQLite file in the same temporary
directory). The bench logs in to hpxd once (``POST /session``, a user of
role "user") and every client sends that cookie and the page's ``Origin``.

The form is the demo's ``contact`` (hpxd/demo.py). Each client is one
HTTP/1.1 keep-alive connection with one request outstanding. Before the
measured window (in the warm-up) it opens the form as a browser does:

    load   GET /forms/contact                -> the page's SIP (hidden input s)
    save   GET /forms/contact                -> a SIP for a new record;
           POST /forms/api/save              -> a record of its own (record-id);
           GET /forms/contact?r=<id>         -> that record's SIP and recordHashMd5

and then, in a loop, one of:

    load   POST /forms/api/load, urlencoded s + the six field values
           -> {"status": "success", "form-update": [6 entries], ...}
    save   POST /forms/api/save?submit_reason=save, urlencoded s, recordHashMd5,
           tabUniqId + the values (the name alternates, so every save changes
           the record) -> {"status": "success", "element-update":
           {"recordHashMd5": {"attr": {"value": <new hash>}}}, ...}; the next
           save sends that hash

Rounds are interleaved as in bench/http_doors.py (whose client, servers
and summary this reuses): for each endpoint, bare and hpxd alternate, the
order reversed every other round. The summary gives each endpoint's
requests/s and requests per server CPU-second (the server process's own
CPU time: its database threads included), and hpxd/bare. There is no
target yet. Every process this script starts is stopped on exit, on errors
and on Ctrl-C. Exit status 0 when every round completed with right answers.
"""

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import http_doors  # bench/http_doors.py: its HTTP client, hpxd daemon, login
import tcp as tcp_bench  # bench/tcp.py: servers, pinning, rounds
import ws as ws_bench
from tcp import HOST, BenchError

BENCH = Path(__file__).resolve().parent
ENDPOINTS = ("load", "save")
FORM = "contact"
SIP = re.compile(rb'<input type="hidden" name="s" value="([^"]*)">')
HASH = re.compile(rb'name="recordHashMd5" id="recordHashMd5" value="([^"]*)">')
FIELD_COUNT = 6  # the contact form's fields: one form-update entry each


def values(client, turn):
    """The form's six values; the name changes with ``turn`` % 2."""
    return {"name": f"bench client {client} turn {turn % 2}", "email": f"c{client}@example.org",
            "has_company": "1", "company": "Bench Ltd", "country": "Iceland", "avatar": ""}


# -- the load generator (worker process) ---------------------------------------------

class FormClient(http_doors.LoadClient):
    """One keep-alive connection: opens the form (see the module's text),
    then makes ``endpoint`` requests in a loop. Reads replies with
    http_doors.LoadClient's parser, which calls ``answered``."""

    def __init__(self, start_at, end_at, done, endpoint, port, cookie, number):
        self.start_at, self.end_at, self.done = start_at, end_at, done
        self.endpoint, self.port, self.cookie, self.number = endpoint, port, cookie, number
        self.calls = 0       # answered right inside the measured window
        self.errors = 0      # wrong or error answers (any time)
        self.latencies = []  # seconds, inside the window
        self.buffer = b""
        self.sent_at = 0.0
        self.state = "connecting"
        self.step = "page"   # page, create, record page, then the endpoint
        self.sip = self.hash = self.record_id = None
        self.turn = 0
        self.load_request = self.load_body = None  # pre-encoded once the SIP is known

    def connection_made(self, transport):
        self.transport = transport
        self.state = "running"
        self.request("GET", f"/forms/{FORM}")

    def request(self, method, path, fields=None):
        payload = urlencode(fields).encode("utf-8") if fields is not None else b""
        self.sent_at = time.time()
        self.transport.write(self.encoded(method, path, payload))

    def encoded(self, method, path, payload):
        head = (f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
                f"Origin: http://{HOST}:{self.port}\r\nCookie: hpxd_session={self.cookie}\r\n")
        if method == "POST":
            head += ("Content-Type: application/x-www-form-urlencoded\r\n"
                     f"Content-Length: {len(payload)}\r\n")
        return (head + "\r\n").encode("ascii") + payload

    def answered(self, head, body):
        if not head.startswith(b"HTTP/1.1 200 "):
            return self.wrong(head, body)
        getattr(self, "after_" + self.step.replace(" ", "_"))(body)

    def wrong(self, head, body):
        if self.step != self.endpoint:  # the form could not be opened: no point going on
            return self.fail(f"opening the form ({self.step}): {head[:200]!r} {body[:300]!r}")
        self.errors += 1
        if self.errors == 1:
            print(f"worker: unexpected reply {head[:200]!r} {body[:300]!r}", file=sys.stderr,
                  flush=True)
        self.next()

    # -- opening the form --------------------------------------------------------------

    def after_page(self, body):
        self.sip = self.found(SIP, body)
        if self.sip is None:
            return
        if self.endpoint == "load":
            self.step = "load"
            self.load_request = self.encoded("POST", "/forms/api/load", urlencode(
                {"s": self.sip, **values(self.number, 0)}).encode("utf-8"))
            return self.next()
        self.step = "create"
        self.request("POST", "/forms/api/save?submit_reason=save",
                     {"s": self.sip, "recordHashMd5": "", "tabUniqId": "", **values(self.number, 1)})

    def after_create(self, body):
        try:
            self.record_id = json.loads(body)["record-id"]
        except (ValueError, KeyError, TypeError):
            return self.fail(f"the first save made no record: {body[:300]!r}")
        self.step = "record page"
        self.request("GET", f"/forms/{FORM}?r={self.record_id}")

    def after_record_page(self, body):
        self.sip, self.hash = self.found(SIP, body), self.found(HASH, body)
        if self.sip is None or self.hash is None:
            return
        self.step = "save"
        self.next()

    def found(self, pattern, body):
        """The hidden input's value, or None (and the client failed)."""
        m = pattern.search(body)
        if m is None:
            self.fail(f"no {pattern.pattern[:40]!r} in the page ({self.step}): {body[:300]!r}")
            return None
        return m.group(1).decode("ascii")

    # -- the measured requests ---------------------------------------------------------

    def after_load(self, body):
        if body != self.load_body:
            try:
                answer = json.loads(body)
                right = answer["status"] == "success" and len(answer["form-update"]) == FIELD_COUNT
            except (ValueError, KeyError, TypeError):
                right = False
            if not right:
                return self.wrong(b"HTTP/1.1 200 (a wrong load answer)", body)
            self.load_body = body
        self.count()

    def after_save(self, body):
        try:
            answer = json.loads(body)
            new_hash = answer["element-update"]["recordHashMd5"]["attr"]["value"]
            right = answer["status"] == "success" and answer["record-id"] == self.record_id
        except (ValueError, KeyError, TypeError):
            right = False
        if not right:  # the record keeps the hash it had
            return self.wrong(b"HTTP/1.1 200 (a wrong save answer)", body)
        self.hash = new_hash
        self.count()

    def count(self):
        now = time.time()
        if self.start_at <= now < self.end_at:
            self.calls += 1
            self.latencies.append(now - self.sent_at)
        self.next()

    def next(self):
        if self.state != "running":
            return
        if time.time() >= self.end_at:
            return self.finish()
        self.turn += 1
        if self.endpoint == "load":
            self.sent_at = time.time()
            return self.transport.write(self.load_request)
        self.request("POST", "/forms/api/save?submit_reason=save",
                     {"s": self.sip, "recordHashMd5": self.hash, "tabUniqId": "bench-tab",
                      **values(self.number, self.turn)})


def client_factory(args):
    """FormClients numbered across this worker's connections (the number
    only makes each client's values its own)."""
    numbers = iter(range(args.seed * 1000, args.seed * 1000 + 1000))
    return lambda start_at, end_at, done, rng: FormClient(
        start_at, end_at, done, args.endpoint, args.port, args.cookie, next(numbers))


# -- the servers -------------------------------------------------------------------

class HpxdDaemon(http_doors.HpxdDaemon):
    """http_doors' daemon (web door, the bench's user, 127.0.0.1 origins)
    with its records in SQLite under its own directory."""

    def config_text(self):
        data_dir = self.dir / "hpxd-data"
        return super().config_text() + f'\n[server]\ndata_dir = "{data_dir}"\n'


class BareFormsServer(tcp_bench.Server):
    label = "bare"

    def start(self):
        self.spawn([sys.executable, str(BENCH / "bare_forms_server.py"), "--port", "0",
                    "--interface", HOST, "--data-dir", str(self.dir / "bare-data")],
                   tcp_bench.python_env())

        def ready(text):
            m = re.search(r"bare forms server listening on [^:\s]+:(\d+)", text)
            return int(m.group(1)) if m else None
        return self.wait_for(ready)

    def log_in(self):
        return "bare-server-ignores-it"


# -- the run ------------------------------------------------------------------------

def run(args):
    tcp_bench.set_pinning(args.pin)
    workdir = Path(tempfile.mkdtemp(prefix="hpxd-bench-forms-"))
    servers = {"bare": BareFormsServer(workdir / "bare"), "hpxd": HpxdDaemon(workdir / "hpxd")}
    try:
        for server in servers.values():
            server.start()
        cookies = {label: server.log_in() for label, server in servers.items()}
        print_header(args, servers)
        rounds = {(endpoint, label): [] for endpoint in args.endpoints for label in servers}
        for i in range(args.rounds):
            for endpoint in args.endpoints:
                labels = list(servers) if i % 2 == 0 else list(servers)[::-1]
                for label in labels:
                    r = tcp_bench.measure(servers[label], args, args.client_procs, seed=i,
                                          script=__file__,
                                          worker_args=("--endpoint", endpoint,
                                                       "--cookie", cookies[label]))
                    rounds[endpoint, label].append(r)
                    print(f"{i + 1:>5}  {endpoint:8} {label:6} {r['rate']:>9.0f} "
                          f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['server_cpu']:>6.0%} "
                          f"{r['client_cpu']:>6.0%} {r['errors']:>6}", flush=True)
        summarize(args, rounds)
        errors = sum(r["errors"] for rs in rounds.values() for r in rs)
        if errors:
            raise BenchError(f"{errors} requests got a wrong or error answer")
    finally:
        ws_bench.stop_all(servers.values(), workdir, args.keep)


def print_header(args, servers):
    print(f"hpxd forms bench: {args.clients} clients x {args.seconds:g} s, {args.rounds} rounds, "
          f"endpoints {', '.join(args.endpoints)}, {args.client_procs} client process(es), "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"load average {tcp_bench.load_average()}")
    if tcp_bench.SERVER_CPUS is not None:
        print(f"  pinned: servers on CPU {sorted(tcp_bench.SERVER_CPUS)}, clients on CPU "
              f"{sorted(tcp_bench.OTHER_CPUS)} (--no-pin to let the kernel place them)")
    for label, server in servers.items():
        print(f"  {label:6} pid {server.proc.pid} on http://{HOST}:{server.port}/")
    print()
    print(f"{'round':>5}  {'endpoint':8} {'server':6} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'srv CPU':>7} {'cli CPU':>7} {'errors':>6}")


def summarize(args, rounds):
    print()
    print(f"summary ({time.strftime('%Y-%m-%d')}, {args.clients} clients, {args.seconds:g} s x "
          f"{args.rounds} rounds, median of rounds; load average now {tcp_bench.load_average()})")
    print(f"  {'endpoint':8} {'server':6} {'req/s':>9} {'req/CPU-s':>10} {'srv CPU':>7} "
          f"{'p50 ms':>7}")
    rate, per_cpu = {}, {}
    for (endpoint, label), rs in rounds.items():
        rate[endpoint, label] = statistics.median(r["rate"] for r in rs)
        with_cpu = [r["rate"] / r["server_cpu"] for r in rs if r["server_cpu"]]
        per_cpu[endpoint, label] = statistics.median(with_cpu) if with_cpu else float("nan")
        print(f"  {endpoint:8} {label:6} {rate[endpoint, label]:>9.0f} "
              f"{per_cpu[endpoint, label]:>10.0f} "
              f"{statistics.median(r['server_cpu'] for r in rs):>6.0%} "
              f"{statistics.median(r['p50_ms'] for r in rs):>7.2f}")
    busiest = max(r["client_cpu"] for rs in rounds.values() for r in rs)
    print(f"  load generator: {args.client_procs} process(es), busy "
          f"{statistics.median(r['client_cpu'] for rs in rounds.values() for r in rs):.0%} "
          f"of one core (median of rounds, busiest {busiest:.0%})")
    for endpoint in args.endpoints:
        ratio = per_cpu[endpoint, "hpxd"] / per_cpu[endpoint, "bare"]
        print(f"  {endpoint:8} ratio hpxd/bare {rate[endpoint, 'hpxd'] / rate[endpoint, 'bare']:.2f}"
              f"  (per server CPU-second {ratio:.2f}; no target yet)")


# -- command line -------------------------------------------------------------------

def endpoint_list(text):
    endpoints = [e.strip() for e in text.split(",") if e.strip()]
    if not endpoints or [e for e in endpoints if e not in ENDPOINTS]:
        raise argparse.ArgumentTypeError(f"endpoints are a comma-separated subset of {ENDPOINTS}")
    return endpoints


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Requests per server CPU-second of the form door's load and save vs "
                    "bare twisted.web doing the same SQL.")
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections (4)")
    parser.add_argument("--seconds", type=float, default=10, help="length of one round (10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server and endpoint (3)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds before each round's window: opening the form, then "
                             "requests (1)")
    parser.add_argument("--endpoints", type=endpoint_list, default=list(ENDPOINTS),
                        help="which endpoints: load, save or both (load,save)")
    parser.add_argument("--client-procs", type=int, default=1,
                        help="load generator processes sharing the clients (1)")
    parser.add_argument("--keep", action="store_true", help="keep the servers' logs and data")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin the server to CPU 0 and the clients to the others")
    tcp_bench.add_worker_args(parser)  # worker mode, used by bench/tcp.py's measure()
    parser.add_argument("--endpoint", choices=ENDPOINTS, help=argparse.SUPPRESS)  # worker
    parser.add_argument("--cookie", help=argparse.SUPPRESS)  # worker: the session cookie
    args = parser.parse_args(argv)
    if not args.worker:
        http_doors.check_args(parser, args)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return tcp_bench.worker_main(args, client=client_factory(args))
    return tcp_bench.run_main("bench/forms.py", run, args)


if __name__ == "__main__":
    sys.exit(main())
