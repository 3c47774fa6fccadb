"""bench/forms.py runs end to end (a smoke test: no rate is judged here, as
in tests/test_bench_http.py): both endpoints on both servers, every answer
right, a ratio per endpoint, and no server left running."""

import re
import subprocess
import sys
from pathlib import Path

from tests.support import REPO

ROW = re.compile(r"^\s+\d+\s+(load|save)\s+(bare|hpxd)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+\d+%\s+\d+%"
                 r"\s+(\d+)$", re.M)


def test_forms_bench_measures_load_and_save_on_hpxd_and_bare_in_one_run():
    argv = [sys.executable, str(REPO / "bench" / "forms.py"), "--clients", "2",
            "--seconds", "0.5", "--rounds", "1", "--warmup", "0.3"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = ROW.findall(done.stdout)
    assert sorted((endpoint, server) for endpoint, server, _, _ in rows) == \
        [("load", "bare"), ("load", "hpxd"), ("save", "bare"), ("save", "hpxd")], done.stdout
    assert all(int(rate) > 0 and errors == "0" for _, _, rate, errors in rows), done.stdout
    for endpoint in ("load", "save"):
        assert re.search(rf"{endpoint}\s+ratio hpxd/bare \d+\.\d\d\s+\(per server CPU-second "
                         r"\d+\.\d\d", done.stdout), endpoint
    pids = [int(pid) for pid in re.findall(r"\bpid (\d+)\b", done.stdout)]
    assert len(pids) == 2 and not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
