"""hpxd's WebSocket door against a bare autobahn server: calls/s and memory.

    python bench/ws.py [--clients 32] [--seconds 10] [--rounds 3] [--client-procs 1]
    python bench/ws.py --rss 5000 [--samples 3] [--settle 2]

Rates (the default): starts, in the same run, a real ``twistd -n hpxd``
daemon (demo app, memory backend, only the web door, on a free port) and the
bare baseline (bench/bare_ws_server.py: autobahn mounted on twisted.web the
same way, with the same options, answering the same JSON). Each client opens
``/ws``, sends ``{"action": "session"}`` (so it is a guest, and calls take
the real path), then loops round-trip ``add`` calls, one outstanding per
connection: ``{"streamId": n, "action": "add", "data": [a, b]}`` answered by
``{"streamId": n, "data": a+b}`` and ``{"streamId": n, "close": true}``.
Rounds are interleaved as in bench/tcp.py (whose round and summary code this
reuses), and the summary gives calls/s and calls per server CPU-second of
each, their ratios hpxd/bare, and how busy the load generator was.

``--rss N``: memory per idle connection. For each sample a fresh server
gets N connections that each open, take a session (``session`` on /ws, the
guest handshake on the TCP door) and go idle; the server's VmRSS is read
before and after (median of a few reads once they settle). Servers: hpxd's
web door, hpxd's TCP door, and the bare WebSocket and TCP servers as
references. A control hpxd daemon that gets no connections is read at the
same moments: its drift says how much of a difference is noise.

The load is made by asyncio processes speaking RFC 6455 directly (this
script run with ``--worker``), about 15 us of CPU per call: a client on the
``websockets`` library spends about 42 us, close to the bare server's cost,
and the load generator must not be the limit.
Every process this script starts is stopped on exit, on errors and on
Ctrl-C. Exit status 0 when every round (or sample) completed correctly.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tcp as tcp_bench  # bench/tcp.py: servers, pinning, rounds and summary
from tcp import HOST, BenchError

BENCH = Path(__file__).resolve().parent
FRAMES_PER_CLIENT = 16  # distinct pre-encoded requests each client cycles through
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
# RSS mode: connections being opened at once. Under bench/bare_server.py's
# listen backlog (Twisted's default, 50): past it the kernel drops handshakes.
CONNECT_AT_ONCE = 40
RSS_READS = 5  # VmRSS reads per measurement, 0.2 s apart; their median counts
WARM_CONNECTIONS = 20  # opened and closed before "before": first-use imports and caches


# -- a minimal WebSocket client ---------------------------------------------------

def client_frame(payload, opcode=TEXT):
    """One final frame, masked as a client must (RFC 6455, 5.3)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, 0x80 | size])
    elif size < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return head + mask + masked


def request_frame(message):
    return client_frame(json.dumps(message).encode("utf-8"))


class WsConnection(asyncio.Protocol):
    """The client side of one WebSocket: opening handshake, masked frames
    out, unmasked frames in, a pong for every ping (hpxd pings idle
    connections and drops those that do not answer). No extension is
    offered, so messages travel uncompressed to both servers.

    Subclasses implement ``opened()``, ``message(payload)`` and ``fail(why)``.
    """

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
        self.upgraded = False
        self.key = base64.b64encode(os.urandom(16)).decode("ascii")
        transport.write((f"GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key}\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode("ascii"))

    def data_received(self, data):
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not self.accepted(buffer[:end]):
                return
            self.upgraded, buffer = True, buffer[end + 4:]
            self.opened()
        self.buffer = self.frames(buffer)

    def accepted(self, head):
        """Is ``head`` a 101 answer to our key? (Fails the connection if not.)"""
        lines = head.decode("latin-1").split("\r\n")
        accept = base64.b64encode(hashlib.sha1(self.key.encode("ascii") + GUID).digest())
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in lines[1:])}
        status = lines[0].split()[1:2]
        if status != ["101"] or headers.get("sec-websocket-accept") != accept.decode("ascii"):
            self.fail(f"WebSocket handshake refused: {lines[0]!r}")
            return False
        return True

    def frames(self, buffer):
        """Handle every whole frame in ``buffer``; return what is left."""
        pos, size = 0, len(buffer)
        while size - pos >= 2 and not self.transport.is_closing():
            first, second = buffer[pos], buffer[pos + 1]
            length, start = second & 0x7F, pos + 2
            if length == 126:
                length, start = int.from_bytes(buffer[pos + 2:pos + 4], "big"), pos + 4
            elif length == 127:
                length, start = int.from_bytes(buffer[pos + 2:pos + 10], "big"), pos + 10
            end = start + length
            if end > size:
                break
            self.frame(first, second & 0x80, buffer[start:end])
            pos = end
        return buffer[pos:]

    def frame(self, first, masked, payload):
        opcode = first & 0x0F
        if masked or not first & 0x80:  # autobahn sends small messages whole
            self.fail(f"unexpected frame (opcode {opcode}, masked {bool(masked)}, "
                      f"final {bool(first & 0x80)})")
        elif opcode == TEXT:
            self.message(payload)
        elif opcode == PING:
            self.transport.write(client_frame(payload, PONG))
        elif opcode == CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            self.fail(f"the server closed the WebSocket (code {code}, {payload[2:]!r})")
        elif opcode != PONG:
            self.fail(f"unexpected frame (opcode {opcode})")

    def opened(self):
        raise NotImplementedError

    def message(self, payload):
        raise NotImplementedError

    def fail(self, why):
        raise NotImplementedError


def is_guest_session(payload):
    """Is ``payload`` the data message answering ``session`` for a guest?"""
    try:
        data = json.loads(payload)["data"]
        return isinstance(data.get("session"), str) and data.get("role") == "guest"
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


SESSION_REQUEST = {"streamId": 0, "action": "session"}
SESSION_CLOSE = {"streamId": 0, "close": True}
SESSION_CLOSE_BYTES = json.dumps(SESSION_CLOSE).encode("utf-8")


class Call:
    """One pre-encoded ``add`` request and the two messages that answer it."""

    __slots__ = ("frame", "data", "close", "data_bytes", "close_bytes")

    def __init__(self, stream, a, b):
        self.frame = request_frame({"streamId": stream, "action": "add", "data": [a, b]})
        self.data = {"streamId": stream, "data": a + b}
        self.close = {"streamId": stream, "close": True}
        # What both servers send (json.dumps); other bytes are parsed and compared.
        self.data_bytes = json.dumps(self.data).encode("utf-8")
        self.close_bytes = json.dumps(self.close).encode("utf-8")


def same(payload, expected_bytes, expected):
    if payload == expected_bytes:
        return True
    try:
        return json.loads(payload) == expected
    except ValueError:
        return False


# -- the load generator (worker process) -----------------------------------------

class LoadClient(tcp_bench.Ending, WsConnection):
    """One connection: handshake, ``session``, then ``add`` calls in a loop.

    The interface bench/tcp.py's ``run_clients`` drives: ``done`` is set when
    the window is over, ``calls``/``errors``/``latencies`` are read then.
    """

    def __init__(self, start_at, end_at, done, rng):
        self.start_at, self.end_at = start_at, end_at
        self.done = done
        self.calls = 0       # answered inside the measured window
        self.errors = 0      # wrong or error answers (any time)
        self.latencies = []  # seconds, inside the window
        self.state = "handshake"
        self.calls_to_make = [Call(n, rng.randrange(10**6), rng.randrange(10**6))
                              for n in range(1, FRAMES_PER_CLIENT + 1)]
        self.index = 0
        self.answered = False  # has the current call's data message come?
        self.right = True      # have its answers been right so far?
        self.sent_at = 0.0

    def opened(self):
        self.state = "session"
        self.transport.write(request_frame(SESSION_REQUEST))

    def message(self, payload):
        if self.state == "running":
            return self.running(payload)
        if self.state == "session":
            if not is_guest_session(payload):
                return self.fail(f"session refused: {payload[:200]!r}")
            self.state = "session-close"
        elif self.state == "session-close":
            if not same(payload, SESSION_CLOSE_BYTES, SESSION_CLOSE):
                return self.fail(f"no close after the session: {payload[:200]!r}")
            self.state = "running"
            self.send()

    def running(self, payload):
        call = self.calls_to_make[self.index]
        if not self.answered:
            self.answered = True
            if same(payload, call.data_bytes, call.data):
                return
            self.wrong(payload)
            if not same(payload, call.close_bytes, call.close):
                return  # an error message: its close comes next
        elif not same(payload, call.close_bytes, call.close):
            self.wrong(payload)
        self.call_done()

    def wrong(self, payload):
        self.right = False
        self.errors += 1
        if self.errors == 1:
            print(f"worker: unexpected reply {payload[:200]!r}", file=sys.stderr, flush=True)

    def call_done(self):
        now = time.time()
        if self.right and self.start_at <= now < self.end_at:
            self.calls += 1
            self.latencies.append(now - self.sent_at)
        self.index = (self.index + 1) % len(self.calls_to_make)
        if now >= self.end_at:
            return self.finish()
        self.send()

    def send(self):
        self.answered, self.right = False, True
        self.sent_at = time.time()
        self.transport.write(self.calls_to_make[self.index].frame)



# -- the servers -------------------------------------------------------------------

class HpxdDaemon(tcp_bench.Server):
    """``twistd -n hpxd`` (demo app, memory backend) with the doors asked for,
    each on a port the kernel picks; ``port`` is the first door's."""

    def __init__(self, workdir, label, doors):
        super().__init__(workdir)
        self.label, self.doors = label, doors
        self.ports = {}

    def config_text(self):
        def listen(door):
            return '["tcp:0:interface=127.0.0.1"]' if door in self.doors else "[]"
        return (f"[tcp]\nlisten = {listen('tcp')}\n[web]\nlisten = {listen('web')}\n"
                '[backend]\nkind = "memory"\n')

    def start(self):
        config = self.dir / "hpxd.toml"
        config.write_text(self.config_text())
        self.spawn([sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                    "-n", "--pidfile=", "hpxd", "--config", str(config)], tcp_bench.python_env())
        return self.wait_for(self.ready)

    def ready(self, text):
        if not re.search(r"hpxd node .* ready", text):
            return None
        for door in self.doors:
            m = re.search(rf"hpxd {door} door(?: \(\w+\))* starting on (\d+)", text)
            self.ports[door] = int(m.group(1))
        return self.ports[self.doors[0]]


class BareWsServer(tcp_bench.Server):
    label = "bare"

    def start(self):
        self.spawn([sys.executable, str(BENCH / "bare_ws_server.py"), "--port", "0",
                    "--interface", HOST], tcp_bench.python_env())

        def ready(text):
            m = re.search(r"bare ws server listening on [^:\s]+:(\d+)", text)
            return int(m.group(1)) if m else None
        return self.wait_for(ready)


# -- rates ---------------------------------------------------------------------------

def run_rates(args):
    tcp_bench.set_pinning(args.pin)
    workdir = Path(tempfile.mkdtemp(prefix="hpxd-bench-ws-"))
    servers = {"bare": BareWsServer(workdir / "bare"),
               "hpxd": HpxdDaemon(workdir / "hpxd", "hpxd", ("web",))}
    try:
        for server in servers.values():
            server.start()
        print_rates_header(args, servers)
        rounds = {label: [] for label in servers}
        labels = list(servers)
        for i in range(args.rounds):
            for label in labels if i % 2 == 0 else labels[::-1]:  # ABAB drift cancels as ABBA
                r = tcp_bench.measure(servers[label], args, args.client_procs, seed=i,
                                      script=__file__)
                rounds[label].append(r)
                print(f"{i + 1:>5}  {label:12} {r['rate']:>9.0f} {r['p50_ms']:>7.2f} "
                      f"{r['p99_ms']:>7.2f} {r['server_cpu']:>6.0%} {r['client_cpu']:>6.0%} "
                      f"{r['errors']:>6}", flush=True)
        tcp_bench.summarize(args, rounds)
        print_verdict(args, rounds)
        errors = sum(r["errors"] for rs in rounds.values() for r in rs)
        if errors:
            raise BenchError(f"{errors} calls got a wrong or error answer")
    finally:
        stop_all(servers.values(), workdir, args.keep)


def print_rates_header(args, servers):
    print(f"hpxd ws bench: {args.clients} clients x {args.seconds:g} s, {args.rounds} rounds, "
          f"{args.client_procs} client process(es), {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}, load average {tcp_bench.load_average()}")
    if tcp_bench.SERVER_CPUS is not None:
        print(f"  pinned: servers on CPU {sorted(tcp_bench.SERVER_CPUS)}, clients on CPU "
              f"{sorted(tcp_bench.OTHER_CPUS)} (--no-pin to let the kernel place them)")
    for label, server in servers.items():
        print(f"  {label:12} pid {server.proc.pid} on ws://{HOST}:{server.port}/ws")
    print()
    print(f"{'round':>5}  {'server':12} {'calls/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'srv CPU':>7} {'cli CPU':>7} {'errors':>6}")


def print_verdict(args, rounds):
    """How busy the load generator was, and the target."""
    client_cores = len(tcp_bench.OTHER_CPUS) if tcp_bench.OTHER_CPUS else os.cpu_count()
    busiest = max(r["client_cpu"] for rs in rounds.values() for r in rs)
    median = statistics.median(r["client_cpu"] for rs in rounds.values() for r in rs)
    print(f"  load generator: {args.client_procs} process(es) on {client_cores} core(s), "
          f"busy {median:.0%} of one core (median of rounds, busiest {busiest:.0%})"
          + ("  -- near its limit: the rates may be the client's" if busiest > 0.9 * client_cores
             else ""))
    per_cpu = {label: statistics.median(r["rate"] / r["server_cpu"] for r in rs
                                        if r["server_cpu"]) for label, rs in rounds.items()}
    ratio = per_cpu["hpxd"] / per_cpu["bare"]
    print(f"  target hpxd/bare >= 0.80 per server CPU-second: {ratio:.2f}, "
          f"{'met' if ratio >= 0.8 else 'NOT met'}")


def stop_all(servers, workdir, keep):
    for server in servers:
        server.stop()
    if keep:
        print(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


# -- memory per idle connection ------------------------------------------------------

class IdleWsClient(WsConnection):
    """Opens /ws, takes a guest session, then only answers pings."""

    def __init__(self, ready):
        self.ready = ready
        self.step = "handshake"
        self.lost = False

    def opened(self):
        self.step = "session"
        self.transport.write(request_frame(SESSION_REQUEST))

    def message(self, payload):
        if self.step == "session" and is_guest_session(payload):
            self.step = "session-close"
        elif self.step == "session-close" and same(payload, SESSION_CLOSE_BYTES, SESSION_CLOSE):
            self.step = "idle"
            self.ready.set_result(None)
        else:
            self.fail(f"unexpected message in step {self.step}: {payload[:200]!r}")

    def fail(self, why):
        self.transport.abort()
        if not self.ready.done():
            self.ready.set_exception(BenchError(why))

    def connection_lost(self, exc):
        self.lost = True
        if not self.ready.done():
            self.ready.set_exception(BenchError(f"connection lost in step {self.step}"))


class IdleTcpClient(asyncio.Protocol):
    """Reads the greeting, handshakes as a guest, then stays silent."""

    def __init__(self, ready):
        self.ready = ready
        self.buffer = b""
        self.lost = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        end = self.buffer.find(tcp_bench.EOF_MARK)
        if end < 0 or self.ready.done():
            return
        frame, self.buffer = self.buffer[:end], self.buffer[end + len(tcp_bench.EOF_MARK):]
        reply = tcp_bench.decode(frame)
        if "version" in (reply.get("data") or {}):  # the greeting
            self.transport.write(tcp_bench.encode({"session": "", "name": "bench", "data": {}}))
        elif reply.get("data") == "Authenticated":
            self.ready.set_result(None)
        else:
            self.ready.set_exception(BenchError(f"handshake refused: {reply!r}"))

    def connection_lost(self, exc):
        self.lost = True
        if not self.ready.done():
            self.ready.set_exception(BenchError("connection lost before the handshake"))


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])  # the kernel writes kB, meaning KiB
    raise BenchError(f"no VmRSS for pid {pid}")


async def median_rss(*pids):
    """Median VmRSS (KiB) of each pid over RSS_READS reads, 0.2 s apart."""
    reads = []
    for i in range(RSS_READS):
        if i:
            await asyncio.sleep(0.2)
        reads.append([vm_rss_kib(pid) for pid in pids])
    return [statistics.median(column) for column in zip(*reads)]


async def open_idle(client, port, count):
    """``count`` connections of ``client``, each ready (session taken)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def one():
        async with gate:
            ready = loop.create_future()
            transport, protocol = await loop.create_connection(lambda: client(ready), HOST, port)
            try:
                await asyncio.wait_for(ready, tcp_bench.START_TIMEOUT)
            except BaseException:
                transport.abort()
                raise
            return protocol

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    protocols = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        close_all(protocols)
        raise BenchError(f"{len(failed)} of {count} connections failed: {failed[0]!r}")
    return protocols


def close_all(protocols):
    for protocol in protocols:
        protocol.transport.abort()


async def rss_sample(server, client, control, args):
    """(before KiB, after KiB, control drift KiB, connections dropped) for one server."""
    warm = await open_idle(client, server.port, WARM_CONNECTIONS)
    close_all(warm)
    await asyncio.sleep(args.settle)
    before, control_before = await median_rss(server.proc.pid, control.proc.pid)
    held = await open_idle(client, server.port, args.rss)
    try:
        await asyncio.sleep(args.settle)
        after, control_after = await median_rss(server.proc.pid, control.proc.pid)
        dropped = sum(p.lost for p in held)
    finally:
        close_all(held)
    return before, after, control_after - control_before, dropped


def raise_nofile(needed):
    """Soft RLIMIT_NOFILE up to the hard limit, for us and (inherited) the servers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchError(f"the hard RLIMIT_NOFILE is {hard}, below the {needed} file descriptors "
                         f"--rss {needed - 200} needs: raise it (ulimit -Hn as root) or use fewer")
    new_soft = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
    return new_soft, hard


RSS_TARGETS = (  # label, server, idle client
    ("hpxd-ws", lambda d: HpxdDaemon(d, "hpxd-ws", ("web",)), IdleWsClient),
    ("hpxd-tcp", lambda d: HpxdDaemon(d, "hpxd-tcp", ("tcp",)), IdleTcpClient),
    ("bare-ws", BareWsServer, IdleWsClient),
    ("bare-tcp", tcp_bench.BareServer, IdleTcpClient),
)


def run_rss(args):
    tcp_bench.set_pinning(args.pin)
    soft, hard = raise_nofile(args.rss + WARM_CONNECTIONS + 200)
    workdir = Path(tempfile.mkdtemp(prefix="hpxd-bench-rss-"))
    control = HpxdDaemon(workdir / "control", "control", ("web", "tcp"))
    try:
        control.start()
        print(f"hpxd ws bench, RSS mode: {args.rss} idle connections per server, {args.samples} "
              f"sample(s), settle {args.settle:g} s, RLIMIT_NOFILE {soft}/{hard}, "
              f"{os.cpu_count()} CPUs, load average {tcp_bench.load_average()}")
        print(f"  control: hpxd pid {control.proc.pid}, no connections, read with every sample")
        print()
        print(f"{'sample':>6}  {'server':10} {'before KiB':>10} {'after KiB':>10} "
              f"{'KiB/conn':>8} {'control KiB':>11} {'dropped':>7}")
        results = {label: [] for label, _, _ in RSS_TARGETS}
        for i in range(args.samples):
            for label, make, client in RSS_TARGETS:
                results[label].append(asyncio.run(
                    sample_fresh(make(workdir / f"{label}-{i}"), client, control, args)))
                before, after, drift, dropped = results[label][-1]
                print(f"{i + 1:>6}  {label:10} {before:>10.0f} {after:>10.0f} "
                      f"{(after - before) / args.rss:>8.2f} {drift:>+11.0f} {dropped:>7}",
                      flush=True)
        summarize_rss(args, results)
    finally:
        stop_all([control], workdir, args.keep)


async def sample_fresh(server, client, control, args):
    """One sample on a server started for it (so no earlier sample's memory counts)."""
    try:
        server.start()  # blocks the loop: no connection is held yet
        result = await rss_sample(server, client, control, args)
    finally:
        server.stop()
    if result[3]:
        raise BenchError(f"{server.label} dropped {result[3]} idle connections:\n"
                         + tcp_bench.tail(server.log(), 15))
    return result


def summarize_rss(args, results):
    print()
    print(f"summary ({time.strftime('%Y-%m-%d')}, {args.rss} idle connections, median (range) of "
          f"{args.samples} sample(s); load average now {tcp_bench.load_average()})")
    for label, samples in results.items():
        per_conn = [(after - before) / args.rss for before, after, _, _ in samples]
        idle = statistics.median(before for before, _, _, _ in samples) / 1024
        print(f"  {label:10} KiB per connection {statistics.median(per_conn):7.2f} "
              f"({min(per_conn):.2f}-{max(per_conn):.2f})   server idle {idle:.1f} MiB")
    drift = [d for samples in results.values() for _, _, d, _ in samples]
    print(f"  control daemon (0 connections): drift {statistics.median(drift):+.0f} KiB "
          f"({min(drift):+.0f} to {max(drift):+.0f}) over the same intervals")
    ws = statistics.median((a - b) / args.rss for b, a, _, _ in results["hpxd-ws"])
    print(f"  target <= 20 KiB per idle ws connection: {ws:.2f}, "
          f"{'met' if ws <= 20 else 'NOT met'}")


# -- command line -----------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="hpxd's WebSocket door vs a bare autobahn server: calls/s, and RSS per "
                    "idle connection (--rss).")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections (32)")
    parser.add_argument("--seconds", type=float, default=10, help="length of one round (10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server (3)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of calls before each round's window (1)")
    parser.add_argument("--client-procs", type=int, default=1,
                        help="load generator processes sharing the clients (1)")
    parser.add_argument("--rss", type=int, metavar="N",
                        help="measure memory per idle connection with N connections instead")
    parser.add_argument("--samples", type=int, default=3, help="--rss: samples per server (3)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="--rss: seconds to wait before reading VmRSS (2)")
    parser.add_argument("--keep", action="store_true", help="keep the servers' logs")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin the server to CPU 0 and the clients to the others")
    tcp_bench.add_worker_args(parser)  # worker mode, used by bench/tcp.py's measure()
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
    if args.rss is not None and not 1 <= args.rss <= 100_000:
        parser.error("--rss must be between 1 and 100000")
    if not 1 <= args.samples <= 20:
        parser.error("--samples must be between 1 and 20")
    if not 0 <= args.settle <= 60:
        parser.error("--settle must be between 0 and 60")


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return tcp_bench.worker_main(args, client=LoadClient)
    return tcp_bench.run_main("bench/ws.py", run_rss if args.rss else run_rates, args)


if __name__ == "__main__":
    sys.exit(main())
