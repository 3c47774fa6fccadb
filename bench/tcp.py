"""Throughput of hpxd's TCP door against a bare server of the same wire format.

    python bench/tcp.py [--clients 32] [--seconds 10] [--rounds 3]
                        [--backend memory|redis] [--compare-backend]
                        [--client-procs 1]

Starts, in the same run, a real ``twistd -n hpxd`` daemon and the bare
baseline (bench/bare_server.py), both on 127.0.0.1 ports the kernel picks.
N clients each connect, read the greeting, handshake as guest, then loop
round-trip ``add`` calls (one call outstanding per client) for a fixed time.
Rounds of the targets are interleaved (bare, hpxd, hpxd, bare, ...) so a
machine that gets busier or quieter during the run shifts both alike; the
summary gives the median calls/s of each and their ratio.

``--backend redis`` starts a private redis-server on a free port (nothing
saved to disk) and points hpxd at it; ``--compare-backend`` runs hpxd on the
memory and the Redis backend in one run and reports redis/memory.

The load is made by ``--client-procs`` asyncio worker processes (this script
run with ``--worker``). Every process this script starts is stopped on exit,
on errors and on Ctrl-C. Exit status 0 when every round completed.
"""

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
EOF_MARK = b"<EOF>"
HOST = "127.0.0.1"
START_TIMEOUT = 30
FRAMES_PER_CLIENT = 16  # distinct pre-encoded requests each client cycles through


class BenchError(Exception):
    """A failure the user should read as one line, not a traceback."""


# -- wire format ---------------------------------------------------------------

def encode(message):
    compressor = zlib.compressobj(5, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    raw = json.dumps(message).encode("utf-8")
    return compressor.compress(raw) + compressor.flush() + EOF_MARK


def decode(frame):
    return json.loads(zlib.decompress(frame, 16 + zlib.MAX_WBITS))


# -- the load generator (worker process) ----------------------------------------

class Ending:
    """How a load client's connection ends: ``done`` (an asyncio Future)
    set, or failed with a BenchError naming the ``state`` it was in."""

    def finish(self):
        self.state = "done"
        self.transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def fail(self, why):
        self.state = "failed"
        self.transport.close()
        if not self.done.done():
            self.done.set_exception(BenchError(why))

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_exception(BenchError(f"server closed the connection in state {self.state}"
                                               + (f" ({exc})" if exc else "")))


class LoadClient(Ending, asyncio.Protocol):
    """One connection: greeting, guest handshake, then ``add`` calls in a loop.

    Requests are encoded once, after the handshake, and a reply is gunzipped
    and checked only until that request's right answer has been seen once
    (later replies must match it byte for byte), so the client's cost per call
    is little more than one write and one read.
    """

    def __init__(self, start_at, end_at, done, rng):
        self.start_at, self.end_at = start_at, end_at
        self.done = done
        self.rng = rng
        self.buffer = b""
        self.state = "greeting"
        self.frames = []
        self.index = 0
        self.sent_at = 0.0
        self.calls = 0      # answered inside the measured window
        self.errors = 0     # wrong or error answers (any time)
        self.latencies = []  # seconds, inside the window

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(EOF_MARK)
            if end < 0:
                return
            frame, self.buffer = self.buffer[:end], self.buffer[end + len(EOF_MARK):]
            self.message(frame)

    def message(self, frame):
        now = time.time()
        if self.state == "running":
            request = self.frames[self.index]
            # A reply byte-identical to one already checked for this request
            # is right; anything else is gunzipped and checked in full.
            if frame != request[2]:
                ok, reply = self.check(frame, request[1])
                if ok:
                    request[2] = frame
                else:
                    self.errors += 1
                    if self.errors == 1:
                        print(f"worker: unexpected reply {reply!r}", file=sys.stderr, flush=True)
            else:
                ok = True
            if ok and self.start_at <= now < self.end_at:
                self.calls += 1
                self.latencies.append(now - self.sent_at)
            self.index = (self.index + 1) % len(self.frames)
            if now >= self.end_at:
                return self.finish()
            return self.send()
        try:
            reply = decode(frame)
        except Exception as e:
            return self.fail(f"undecodable reply ({e!r})")
        if self.state == "greeting":
            self.state = "handshake"
            self.transport.write(encode({"session": "", "name": "bench", "data": {}}))
            return
        # the handshake's answer
        if reply.get("data") != "Authenticated" or not reply.get("session"):
            return self.fail(f"handshake refused: {reply!r}")
        session = reply["session"]
        for _ in range(FRAMES_PER_CLIENT):
            a, b = self.rng.randrange(10**6), self.rng.randrange(10**6)
            request = {"session": session, "name": "bench", "data": [{"fname": "add", "a": a, "b": b}]}
            self.frames.append([encode(request), a + b, None])  # frame, answer, checked reply
        self.state = "running"
        self.send()

    @staticmethod
    def check(frame, expected):
        try:
            reply = decode(frame)
            entry = reply["data"][0]
            return entry.get("data") == expected and "error" not in entry, reply
        except Exception:
            return False, frame

    def send(self):
        self.sent_at = time.time()
        self.transport.write(self.frames[self.index][0])



async def run_clients(port, clients, start_at, seconds, seed, client=None):
    """``clients`` connections of ``client`` (LoadClient: HPX), all measured
    over one window; bench/ws.py passes its WebSocket client."""
    client = client or LoadClient
    loop = asyncio.get_running_loop()
    end_at = start_at + seconds
    protocols, waits = [], []
    rng = random.Random(seed)
    for _ in range(clients):
        done = loop.create_future()
        _, protocol = await loop.create_connection(
            lambda done=done: client(start_at, end_at, done, rng), HOST, port)
        protocols.append(protocol)
        waits.append(done)
    # No call may hang the run: give up well after the window's end.
    remaining = end_at - time.time() + 30
    results = asyncio.gather(*waits)
    while time.time() < start_at and not results.done():
        await asyncio.sleep(min(0.05, max(0.0, start_at - time.time())))
    cpu_at_start = time.process_time()
    await asyncio.wait_for(results, remaining)
    cpu = time.process_time() - cpu_at_start
    latencies = [x for p in protocols for x in p.latencies]
    return {
        "calls": sum(p.calls for p in protocols),
        "errors": sum(p.errors for p in protocols),
        "cpu_seconds": cpu,
        "latencies": latencies,
    }


def worker_main(args, client=None):
    try:
        result = asyncio.run(run_clients(args.port, args.clients, args.start_at, args.seconds,
                                         args.seed, client))
    except (BenchError, OSError, asyncio.TimeoutError) as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group
        return 130
    # Latencies travel as a sorted sample, enough for percentiles.
    lat = sorted(result.pop("latencies"))
    step = max(1, len(lat) // 2000)
    result["latency_sample"] = lat[::step]
    print(json.dumps(result), flush=True)
    return 0


# -- the servers ----------------------------------------------------------------

def cpu_ticks(pid):
    """utime + stime of ``pid`` in clock ticks (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


TICKS = os.sysconf("SC_CLK_TCK")

# CPU pinning (--pin, on by default with 2+ CPUs): the measured server gets
# CPU 0 to itself; the load generator and redis-server share the others.
# Without it the kernel sometimes runs server and clients on one CPU for a
# while, which moves a round's rate by a third, in either server.
SERVER_CPUS = None
OTHER_CPUS = None


def set_pinning(enabled):
    global SERVER_CPUS, OTHER_CPUS
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if enabled and len(cpus) >= 2:
        SERVER_CPUS, OTHER_CPUS = {cpus[0]}, set(cpus[1:])
    else:
        SERVER_CPUS = OTHER_CPUS = None


def pinned_to(cpus):
    """A preexec_fn that pins the child (and the threads it starts) to ``cpus``."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


class Server:
    """A subprocess we started, its log file and the port it listens on."""

    label = "?"
    backend_kind = None

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logfile = self.dir / "out.log"
        self.proc = None
        self.port = None
        self._log = None

    cpus = "server"  # which set of CPUs this process is pinned to

    def spawn(self, argv, env=None):
        self._log = open(self.logfile, "wb")
        cpus = SERVER_CPUS if self.cpus == "server" else OTHER_CPUS
        self.proc = subprocess.Popen(argv, cwd=self.dir, env=env, stdin=subprocess.DEVNULL,
                                     preexec_fn=pinned_to(cpus),
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def log(self):
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def wait_for(self, ready):
        """Poll the log until ``ready(text)`` returns a port."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log()
            port = ready(text)
            if port:
                self.port = port
                return self
            if self.proc.poll() is not None:
                raise BenchError(f"{self.label} exited with status {self.proc.returncode}:\n"
                                 + tail(text))
            time.sleep(0.05)
        raise BenchError(f"{self.label} did not start in {START_TIMEOUT}s:\n" + tail(self.log()))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def tail(text, lines=30):
    return "\n".join(text.splitlines()[-lines:])


def python_env():
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=str(REPO) + (os.pathsep + path if path else ""))


class BareServer(Server):
    label = "bare"

    def start(self):
        self.spawn([sys.executable, str(BENCH / "bare_server.py"), "--port", "0",
                    "--interface", HOST], python_env())

        def ready(text):
            m = re.search(r"bare server listening on [^:\s]+:(\d+)", text)
            return int(m.group(1)) if m else None
        return self.wait_for(ready)


class HpxdServer(Server):
    def __init__(self, workdir, backend, redis_url=None):
        super().__init__(workdir)
        self.backend_kind = backend
        self.redis_url = redis_url
        self.label = f"hpxd-{backend}"

    def config_text(self):
        text = ('[tcp]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
                '[web]\nlisten = []\n'
                f'[backend]\nkind = "{self.backend_kind}"\n')
        if self.redis_url:
            text += f'redis_url = "{self.redis_url}"\n'
        return text

    def start(self):
        config = self.dir / "hpxd.toml"
        config.write_text(self.config_text())
        self.spawn([sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                    "-n", "--pidfile=", "hpxd", "--config", str(config)], python_env())

        def ready(text):
            m = re.search(r"hpxd tcp door(?: \(\w+\))* starting on (\d+)", text)
            return int(m.group(1)) if m and "ready" in text else None
        return self.wait_for(ready)


class RedisServer(Server):
    label = "redis-server"
    cpus = "other"  # a helper, not the server under test

    def start(self):
        program = shutil.which("redis-server")
        if program is None:
            raise BenchError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.spawn([program, "--port", str(self.port), "--bind", HOST, "--save", "",
                    "--appendonly", "no", "--dir", str(self.dir)])
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"redis-server exited with status {self.proc.returncode}:\n"
                                 + tail(self.log()))
            if redis_ping(self.port):
                return self
            time.sleep(0.05)
        raise BenchError(f"redis-server did not answer PING in {START_TIMEOUT}s")

    @property
    def url(self):
        return f"redis://{HOST}:{self.port}/0"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def redis_ping(port):
    try:
        with socket.create_connection((HOST, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_backend_available():
    return (REPO / "hpxd" / "backends" / "redis.py").exists()


# -- one measured round -----------------------------------------------------------

def measure(server, args, workers, seed, helpers=(), script=None, worker_args=()):
    """Run the clients against ``server`` once; return the round's numbers.

    ``helpers`` are other servers it leans on (redis-server): their CPU use
    is reported too, since they share the same two cores. The workers are
    ``script`` run with ``--worker`` (this file; bench/ws.py passes itself)
    and ``worker_args`` (what else that script's workers must be told).
    """
    start_at = time.time() + args.warmup + 0.5 + 0.2 * workers  # after connects + warm-up
    shares = [args.clients // workers + (1 if i < args.clients % workers else 0)
              for i in range(workers)]
    procs = []
    try:
        for i, n in enumerate(shares):
            procs.append(subprocess.Popen(
                [sys.executable, str(Path(script or __file__).resolve()), "--worker",
                 "--port", str(server.port), "--clients", str(n), "--start-at", repr(start_at),
                 "--seconds", repr(float(args.seconds)), "--seed", str(seed * 100 + i),
                 *worker_args],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                preexec_fn=pinned_to(OTHER_CPUS)))
        while time.time() < start_at:
            time.sleep(min(0.01, max(0.0, start_at - time.time())))
        ticks_before = cpu_ticks(server.proc.pid)
        helper_before = sum(cpu_ticks(h.proc.pid) for h in helpers)
        time.sleep(max(0.0, start_at + args.seconds - time.time()))
        ticks_after = cpu_ticks(server.proc.pid)
        helper_after = sum(cpu_ticks(h.proc.pid) for h in helpers)
        results = []
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=args.seconds + 60)
            except subprocess.TimeoutExpired:
                raise BenchError(f"{server.label}: a client process did not finish") from None
            lines = out.strip().splitlines()
            results.append(json.loads(lines[-1]) if lines else {"error": "worker printed nothing"})
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    failed = [r["error"] for r in results if "error" in r]
    if failed:
        raise BenchError(f"{server.label}: clients failed: {failed[0]}\n{tail(server.log(), 15)}")
    latencies = sorted(x for r in results for x in r["latency_sample"])
    calls = sum(r["calls"] for r in results)
    return {
        "calls": calls,
        "errors": sum(r["errors"] for r in results),
        "rate": calls / args.seconds,
        "server_cpu": (ticks_after - ticks_before) / TICKS / args.seconds,
        "client_cpu": sum(r["cpu_seconds"] for r in results) / args.seconds,
        "helper_cpu": (helper_after - helper_before) / TICKS / args.seconds if helpers else None,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


# -- the run ------------------------------------------------------------------------

def plan(args):
    """Which servers to measure: (label, backend or None for bare)."""
    if args.compare_backend:
        return [("bare", None), ("hpxd-memory", "memory"), ("hpxd-redis", "redis")]
    return [("bare", None), (f"hpxd-{args.backend}", args.backend)]


def run(args):
    set_pinning(args.pin)
    targets = plan(args)
    needs_redis = any(backend == "redis" for _, backend in targets)
    if needs_redis and not redis_backend_available():
        raise BenchError("the Redis backend is not there yet (hpxd/backends/redis.py is missing): "
                         "run with --backend memory, or wait for it")
    workdir = Path(tempfile.mkdtemp(prefix="hpxd-bench-"))
    started = []
    try:
        redis = None
        if needs_redis:
            redis = RedisServer(workdir / "redis")
            started.append(redis)
            redis.start()
        servers = {}
        for label, backend in targets:
            if backend is None:
                server = BareServer(workdir / label)
            else:
                server = HpxdServer(workdir / label, backend, redis.url if backend == "redis" else None)
            started.append(server)
            servers[label] = server.start()
        print(f"hpxd bench: {args.clients} clients x {args.seconds:g} s, {args.rounds} rounds, "
              f"{args.client_procs} client process(es), {os.cpu_count()} CPUs, "
              f"Python {sys.version.split()[0]}, load average {load_average()}")
        if SERVER_CPUS is not None:
            print(f"  pinned: servers on CPU {sorted(SERVER_CPUS)}, clients and redis-server "
                  f"on CPU {sorted(OTHER_CPUS)} (--no-pin to let the kernel place them)")
        for label, server in servers.items():
            print(f"  {label:12} pid {server.proc.pid} on {HOST}:{server.port}")
        print()
        print(f"{'round':>5}  {'server':12} {'calls/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'srv CPU':>7} {'cli CPU':>7} {'errors':>6}")
        rounds = {label: [] for label, _ in targets}
        labels = [label for label, _ in targets]
        for i in range(args.rounds):
            order = labels if i % 2 == 0 else labels[::-1]  # ABAB drift cancels as ABBA
            for label in order:
                helpers = [redis] if servers[label].backend_kind == "redis" else []
                r = measure(servers[label], args, args.client_procs, seed=i, helpers=helpers)
                rounds[label].append(r)
                extra = f"  (redis-server CPU {r['helper_cpu']:.0%})" if helpers else ""
                print(f"{i + 1:>5}  {label:12} {r['rate']:>9.0f} {r['p50_ms']:>7.2f} "
                      f"{r['p99_ms']:>7.2f} {r['server_cpu']:>6.0%} {r['client_cpu']:>6.0%} "
                      f"{r['errors']:>6}{extra}", flush=True)
        summarize(args, rounds)
        errors = sum(r["errors"] for rs in rounds.values() for r in rs)
        if errors:
            raise BenchError(f"{errors} calls got a wrong or error answer")
    finally:
        for server in reversed(started):
            server.stop()
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def load_average():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def summarize(args, rounds):
    median = {label: statistics.median(r["rate"] for r in rs) for label, rs in rounds.items()}
    per_cpu = {label: statistics.median(r["rate"] / r["server_cpu"] for r in rs if r["server_cpu"])
               for label, rs in rounds.items()}
    print()
    print(f"summary ({time.strftime('%Y-%m-%d')}, {args.clients} clients, {args.seconds:g} s x "
          f"{args.rounds} rounds, median of rounds; load average now {load_average()})")
    print(f"  {'server':12} {'calls/s':>9} {'calls/CPU-s':>12} {'srv CPU':>7} {'p50 ms':>7}")
    for label, rs in rounds.items():
        cpu = statistics.median(r["server_cpu"] for r in rs)
        p50 = statistics.median(r["p50_ms"] for r in rs)
        helper = [r["helper_cpu"] for r in rs if r["helper_cpu"] is not None]
        extra = f"  + redis-server CPU {statistics.median(helper):.0%}" if helper else ""
        print(f"  {label:12} {median[label]:>9.0f} {per_cpu[label]:>12.0f} {cpu:>6.0%} "
              f"{p50:>7.2f}{extra}")
    pairs = [(f"{label}/bare", label, "bare") for label in rounds if label != "bare"]
    if "hpxd-memory" in rounds and "hpxd-redis" in rounds:
        pairs.append(("redis/memory", "hpxd-redis", "hpxd-memory"))
    for name, top, bottom in pairs:
        print(f"  ratio {name:20} {median[top] / median[bottom]:.2f}  "
              f"(per server CPU-second {per_cpu[top] / per_cpu[bottom]:.2f})")


def add_worker_args(parser):
    """The hidden options of worker mode: this script (or bench/ws.py) run by measure()."""
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Calls/s of hpxd's TCP door vs a bare server of the same wire format.")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections (32)")
    parser.add_argument("--seconds", type=float, default=10, help="length of one round (10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server (3)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of calls before each round's window (1)")
    parser.add_argument("--backend", choices=("memory", "redis"), default="memory",
                        help="hpxd's [backend] kind (memory)")
    parser.add_argument("--compare-backend", action="store_true",
                        help="measure hpxd on memory and on redis (and bare) in one run")
    parser.add_argument("--client-procs", type=int, default=1,
                        help="load generator processes sharing the clients (1)")
    parser.add_argument("--keep", action="store_true", help="keep the servers' logs")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin the server to CPU 0 and the clients to the others")
    add_worker_args(parser)
    args = parser.parse_args(argv)
    if not args.worker:
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
    return args


def run_main(name, body, args):
    """Run ``body(args)`` as a bench's command line does: SIGTERM ends it
    like Ctrl-C (through the finally blocks that stop every process), and
    a BenchError is one line. The exit status (bench/ws.py uses it too)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        body(args)
    except BenchError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted; servers stopped", file=sys.stderr)
        return 130
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    return run_main("bench/tcp.py", run, args)


if __name__ == "__main__":
    sys.exit(main())
