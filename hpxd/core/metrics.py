"""What a node counts for ``/metrics`` (shown by hpxd.doors.web.metrics).

Counting is on every call's path, so it is plain Python: ints in dicts and
lists, bumped inline by the dispatcher and the doors. Nothing here takes a
lock or builds an object per call, as prometheus_client's ``Counter.inc``
would (a lock per call); the web door's collector turns these counts and
the node's live state into prometheus_client metric families only when
``/metrics`` is scraped.

Labels never carry what a client chose: a function label is the name of a
function the app registered (any other name the client sent is counted
under ``UNKNOWN_FUNCTION``), a code label comes from the one error table,
and a door label from the doors themselves. Nothing is counted by session,
user or argument.
"""

import time
from bisect import bisect_left
from collections import defaultdict

from hpxd.core.errors import ERROR_TABLE

UNKNOWN_FUNCTION = "(unknown)"  # not an identifier: no app function can have this name
OK = "ok"  # the code label of a call that answered
OTHER_CODE = "other"  # an error code that is not in the error table (an app's own class)
NO_DOOR = "none"  # a call made without an environ (the app itself, tests)

# Seconds; the buckets of the call latency histogram (+Inf is added).
LATENCY_BOUNDS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                  0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# One call in SAMPLE_EVERY is timed: two clock reads and a bucket look-up on
# every call cost about 0.35 µs, close to 1 % of the TCP door's CPU per call
# (docs/performance.md). The calls counters count every call.
SAMPLE_EVERY = 16

clock = time.perf_counter


class Latency:
    """One door's histogram: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("buckets", "sum")

    def __init__(self):
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.sum = 0.0

    def observe(self, seconds):
        # bisect_left: the first bound >= seconds, as Prometheus' "le" means.
        self.buckets[bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.sum += seconds

    def cumulative(self):
        """``[(le, count)]`` as prometheus_client's HistogramMetricFamily takes them."""
        out, total = [], 0
        for bound, count in zip((*map(str, LATENCY_BOUNDS), "+Inf"), self.buckets):
            total += count
            out.append((bound, total))
        return out


class Metrics:
    """The counts of one node (held by its dispatcher)."""

    sample_every = SAMPLE_EVERY

    def __init__(self):
        # door -> {Function: calls that answered}: plain dicts keyed by the
        # Function object (hashed by identity) are the cheapest count on the
        # hot path; names are looked up at scrape time.
        self.answered = {}
        self.failed = {}  # (door, Function or None, code) -> calls
        self.latency = defaultdict(Latency)  # door -> Latency
        self.countdown = self.sample_every  # calls until the next timed one
        # door name -> a callable returning that door's DoorTraffic, read at
        # scrape time (a door registers itself: see TcpDoor).
        self.doors = {}

    def count_failed(self, door, function, code):
        """A call refused or failed (``function`` None: not one of the app's)."""
        key = (door, function, code)
        self.failed[key] = self.failed.get(key, 0) + 1

    def ended(self, door, function, code, started):
        """A call that ran has ended with ``code`` (OK or an error code);
        ``started``: its clock() when it was picked for timing, else 0.
        (The dispatcher inlines this for the calls that answer at once.)"""
        if code == OK:
            answered = self.answered.setdefault(door, {})
            answered[function] = answered.get(function, 0) + 1
        else:
            self.count_failed(door, function, code)
        if started:
            self.timed(door, started)

    def timed(self, door, started):
        self.latency[door].observe(clock() - started)

    def calls(self):
        """``{(door, function label, code label): calls}``, for the collector."""
        out = {}
        for door, counts in self.answered.items():
            for function, n in counts.items():
                out[door, function.full_name, OK] = n
        for (door, function, code), n in self.failed.items():
            key = (door, UNKNOWN_FUNCTION if function is None else function.full_name,
                   str(code) if code in ERROR_TABLE else OTHER_CODE)
            out[key] = out.get(key, 0) + n
        return out


class DoorTraffic:
    """What a door reports at scrape time. ``None``: this door does not
    count it (yet)."""

    __slots__ = ("connections", "bytes_in", "bytes_out", "dropped_slow")

    def __init__(self, connections, bytes_in=None, bytes_out=None, dropped_slow=None):
        self.connections = connections
        self.bytes_in, self.bytes_out, self.dropped_slow = bytes_in, bytes_out, dropped_slow
