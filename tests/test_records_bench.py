"""bench/records.py runs, on both databases, and leaves nothing behind."""

import os
import re
import subprocess
import sys

from tests.conftest import POSTGRES_DEFAULT, POSTGRES_ENV
from tests.support import REPO


def test_the_records_bench_runs_briefly_on_both_databases(postgres_url):
    # postgres_url: only to skip (or fail in CI) without a server
    import psycopg
    admin_url = os.environ.get(POSTGRES_ENV, POSTGRES_DEFAULT)
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "records.py"), "--rows", "500",
         "--seconds", "0.2", "--rounds", "2", "--warmup", "0", "--postgres", admin_url],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for database in ("sqlite", "postgresql"):
        for query in ("open", "get"):
            line = next(l for l in lines if l.split()[:2] == [database, query])
            assert re.search(r"hpxd/driver \d+\.\d\d", line), line
    with psycopg.connect(admin_url, autocommit=True) as admin:
        left = admin.execute("SELECT datname FROM pg_database "
                             "WHERE datname LIKE 'hpxd_bench_%'").fetchall()
    assert left == []
