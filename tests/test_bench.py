"""bench/tcp.py runs end to end, and its baseline is a fair one.

Smoke tests only: no rate is judged here (timings belong in bench/, never in
a test). They keep the benchmark from rotting between the runs recorded in
docs/performance.md.
"""

import importlib.util
import re
import subprocess
import sys

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


def load_bare_server():
    spec = importlib.util.spec_from_file_location("bare_server", REPO / "bench" / "bare_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bare_baseline_hands_out_session_ids_of_hpxd_length():
    # Shorter ids would make every bare message cheaper to inflate, parse
    # and compress, and the ratio would measure message size.
    bare = load_bare_server()
    first = bare.answer({"session": "", "name": "t", "data": {}})["session"]
    second = bare.answer({"session": "", "name": "t", "data": {}})["session"]
    assert len(first) == len(second) == len(new_session_id())
    assert first != second
