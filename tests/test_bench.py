"""bench/tcp.py and bench/ws.py run end to end, and their baselines are fair ones.

Smoke tests only: no rate is judged here (timings belong in bench/, never in
a test). They keep the benchmark from rotting between the runs recorded in
docs/performance.md.
"""

import importlib.util
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from hpxd.core.sessions import new_session_id
from tests.support import REPO, need

ROUND_ROW = re.compile(r"^\s+\d+\s+(\S+)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+\d+%\s+\d+%\s+(\d+)\b", re.M)


def run_bench(*args):
    argv = [sys.executable, str(REPO / "bench" / "tcp.py"), "--clients", "2",
            "--seconds", "0.3", "--rounds", "1", "--warmup", "0.1", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO)


def rounds_of(output):
    """(server, calls/s, errors) of every round row the bench printed."""
    return [(server, int(rate), int(errors)) for server, rate, errors in ROUND_ROW.findall(output)]


def test_bench_measures_hpxd_and_bare_in_one_run():
    done = run_bench()
    assert done.returncode == 0, done.stdout + done.stderr
    rows = rounds_of(done.stdout)
    assert {server for server, _, _ in rows} == {"bare", "hpxd-memory"}
    assert all(rate > 0 and errors == 0 for _, rate, errors in rows), done.stdout
    assert re.search(r"ratio hpxd-memory/bare\s+\d+\.\d\d", done.stdout)


def test_bench_compares_the_backends():
    need("redis-server", "bench/tcp.py --compare-backend starts its own redis-server")
    done = run_bench("--compare-backend")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = rounds_of(done.stdout)
    assert {server for server, _, _ in rows} == {"bare", "hpxd-memory", "hpxd-redis"}
    assert all(rate > 0 and errors == 0 for _, rate, errors in rows), done.stdout
    assert re.search(r"ratio redis/memory\s+\d+\.\d\d", done.stdout)


def load_bench_module(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bare_baseline_hands_out_session_ids_of_hpxd_length():
    # Shorter ids would make every bare message cheaper to inflate, parse
    # and compress, and the ratio would measure message size.
    bare = load_bench_module("bare_server")
    first = bare.answer({"session": "", "name": "t", "data": {}})["session"]
    second = bare.answer({"session": "", "name": "t", "data": {}})["session"]
    assert len(first) == len(second) == len(new_session_id())
    assert first != second


# -- bench/ws.py ------------------------------------------------------------------

RSS_ROW = re.compile(r"^\s+\d+\s+(\S+)\s+\d+\s+\d+\s+-?[\d.]+\s+[+-]\d+\s+(\d+)$", re.M)


def run_ws_bench(*args):
    argv = [sys.executable, str(REPO / "bench" / "ws.py"), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=REPO)


def assert_servers_gone(output):
    # The bench prints the pid of every server it starts; all must be stopped.
    pids = [int(pid) for pid in re.findall(r"\bpid (\d+)\b", output)]
    assert pids, output
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()], output


def test_ws_bench_measures_hpxd_and_bare_in_one_run():
    done = run_ws_bench("--clients", "2", "--seconds", "0.3", "--rounds", "1", "--warmup", "0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = rounds_of(done.stdout)
    assert {server for server, _, _ in rows} == {"bare", "hpxd"}
    assert all(rate > 0 and errors == 0 for _, rate, errors in rows), done.stdout
    assert re.search(r"ratio hpxd/bare\s+\d+\.\d\d\s+\(per server CPU-second \d+\.\d\d\)",
                     done.stdout)
    assert re.search(r"load generator: 1 process\(es\) .* busy \d+% of one core", done.stdout)
    assert_servers_gone(done.stdout)


def test_ws_bench_measures_memory_per_idle_connection():
    done = run_ws_bench("--rss", "50", "--samples", "1", "--settle", "0.2")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = RSS_ROW.findall(done.stdout)
    assert {server for server, _ in rows} == {"hpxd-ws", "hpxd-tcp", "bare-ws", "bare-tcp"}
    assert all(dropped == "0" for _, dropped in rows), done.stdout
    for server in ("hpxd-ws", "hpxd-tcp", "bare-ws", "bare-tcp"):
        assert re.search(rf"{server}\s+KiB per connection\s+-?\d+\.\d\d", done.stdout), server
    assert re.search(r"control daemon \(0 connections\): drift", done.stdout)
    assert_servers_gone(done.stdout)


def test_ws_bench_says_when_the_file_limit_is_too_low():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard >= 100_000 + 220:
        pytest.skip("this machine's hard RLIMIT_NOFILE allows 100,000 connections")
    done = run_ws_bench("--rss", "100000", "--samples", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "hard RLIMIT_NOFILE" in done.stderr


def test_bare_ws_baseline_answers_as_hpxd_does():
    # Same data, and session ids of hpxd's length: both servers then send
    # messages of the same size.
    bare = load_bench_module("bare_ws_server")
    session = bare.answer({"streamId": 1, "action": "session"})
    assert len(session["session"]) == len(new_session_id())
    assert session["user"] is None and session["role"] == "guest"
    assert bare.answer({"streamId": 2, "action": "add", "data": [2, 3]}) == 5
