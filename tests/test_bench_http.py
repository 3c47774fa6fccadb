"""bench/http_doors.py runs end to end (a smoke test: no rate is judged here,
as in tests/test_bench.py), and its client reads both kinds of HTTP body."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from tests.support import REPO

ROW = re.compile(r"^\s+\d+\s+/(\w+)\s+(bare|hpxd)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+\d+%\s+\d+%\s+(\d+)$",
                 re.M)


def load_bench_module(name):
    sys.path.insert(0, str(REPO / "bench"))  # it imports bench/tcp.py and bench/ws.py
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO / "bench"))


def test_http_bench_measures_hpxd_and_bare_in_one_run():
    argv = [sys.executable, str(REPO / "bench" / "http_doors.py"), "--clients", "2",
            "--seconds", "0.3", "--rounds", "1", "--warmup", "0.1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = ROW.findall(done.stdout)
    doors = {door for door, _, _, _ in rows}
    assert "ajax" in doors and doors <= {"ajax", "api"}, done.stdout
    assert {(door, server) for door, server, _, _ in rows} == \
        {(door, server) for door in doors for server in ("bare", "hpxd")}
    assert all(int(rate) > 0 and errors == "0" for _, _, rate, errors in rows), done.stdout
    for door in doors:
        assert re.search(rf"/{door}\s+ratio hpxd/bare \d+\.\d\d\s+\(per server CPU-second "
                         r"\d+\.\d\d", done.stdout), door
    if "api" not in doors:
        assert "/api: not in this tree, skipped" in done.stdout
    pids = [int(pid) for pid in re.findall(r"\bpid (\d+)\b", done.stdout)]
    assert len(pids) == 2 and not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def test_the_load_client_reads_chunked_bodies_and_waits_for_the_rest():
    bench = load_bench_module("http_doors")
    reply = b"HEAD\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\nNEXT"
    start = reply.index(b"\r\n\r\n") + 4
    body, end = bench.dechunked(reply, start)
    assert body == b"abcde" and reply[end:] == b"NEXT"
    for cut in range(start, len(reply) - 4):
        assert bench.dechunked(reply[:cut], start) == (None, None)
    assert bench.content_length(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\nX: y") == 12
