"""hpxd's WebSocket settings against the Autobahn|Testsuite (fuzzingclient).

    python bench/autobahn_testsuite.py [--cases "*"] [--exclude "9.*"]
                                       [--cache DIR] [--python27 PATH]
                                       [--timeout SECONDS] [--setup-only]

1. Makes once, then reuses, a Python 2.7 virtualenv with ``autobahntestsuite``
   (it is Python 2 code) in ``--cache`` (default ``$HPXD_WSTEST_CACHE`` or
   ``~/.cache/hpxd-wstest``), from the pinned versions below.
2. Starts a real ``twistd -n hpxd`` on a free 127.0.0.1 port with
   ``[web] echo_path = "/echo"`` and every other ``[web]`` limit at its
   default: the echo's factory takes /ws's options (set_websocket_options).
3. Runs ``wstest -m fuzzingclient`` against ``ws://127.0.0.1:PORT/echo``;
   9.* (performance: messages up to 16 MiB, over hpxd's 1 MiB default cap)
   is left out.
4. Reads the report's ``index.json``: every case must be OK, NON-STRICT or
   INFORMATIONAL (its close behaviour too), and the daemon must still answer
   /healthz. The other cases are printed as a table. Each run works in its
   own ``--cache``/run-* directory (config, logs, HTML report): removed after
   a pass unless ``--keep``, kept after a failure.

Exit status: 0 every case passed; 1 a case failed, or the daemon misbehaved;
3 wstest cannot be made here (no Python 2.7, or the install failed: tests
skip on 3 unless HPXD_REQUIRE_SERVICES=1). Every process this script starts
is stopped on every exit: errors, Ctrl-C and SIGTERM.
"""

import argparse
import collections
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT = 30
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
SETUP_FAILED = 3
# What installs and runs on Python 2.7 today (NOTES-TWISTED.md): newer
# releases of these dropped Python 2.
VIRTUALENV = "virtualenv==16.7.12"
REQUIREMENTS = [
    "txaio==2.1.0", "incremental==16.10.1", "pyOpenSSL==19.1.0", "cryptography==3.3.2",
    "Twisted==19.10.0", "zope.interface==4.6.0", "jinja2==2.11.3", "markupsafe==1.1.1",
    "Werkzeug==1.0.1", "klein==17.10.0", "service_identity==18.1.0", "unittest2==1.1.0",
    "six==1.16.0", "autobahn[accelerate,twisted]==0.10.9", "autobahntestsuite==25.10.1",
]


class Failed(Exception):
    """A failure to print as one paragraph, not a traceback."""


class SetupFailed(Failed):
    """wstest cannot be made on this machine."""


# -- the Python 2.7 virtualenv ----------------------------------------------------

def find_python27(given):
    candidates = [given] if given else [
        os.environ.get("HPXD_PY27"), shutil.which("python2.7"),
        *sorted(str(p) for p in Path.home().glob(".pyenv/versions/2.7*/bin/python2.7"))]
    for candidate in candidates:
        # Asked, not trusted: a pyenv shim is on PATH even where it fails.
        if candidate and os.access(candidate, os.X_OK):
            answer = subprocess.run(
                [candidate, "-c", "import sys; assert sys.version_info[:2] == (2, 7); "
                                  "print(sys.executable)"],
                capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if answer.returncode == 0:
                return answer.stdout.strip()
    raise SetupFailed("no Python 2.7 found (give --python27 PATH or set HPXD_PY27): "
                      "the Autobahn|Testsuite is Python 2 code")


def wstest(cache, python27):
    """The path of ``wstest`` in the cached virtualenv, made if need be."""
    cache.mkdir(parents=True, exist_ok=True)
    venv, marker = cache / "venv", cache / "venv" / ".hpxd-requirements"
    wanted = "\n".join([python27, VIRTUALENV, *REQUIREMENTS])
    with open(cache / "lock", "w") as lock:  # two runs at once make it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text() == wanted:
            return venv / "bin" / "wstest"
        print(f"making the Python 2.7 virtualenv for wstest in {venv} (once)", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        try:
            make_venv(cache, venv, python27)
        except SetupFailed:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        marker.write_text(wanted)
    return venv / "bin" / "wstest"


def make_venv(cache, venv, python27):
    log, tools = cache / "setup.log", cache / "py27tools"
    steps = [] if (tools / "virtualenv.py").exists() else [
        [python27, "-m", "pip", "install", "--disable-pip-version-check", "--target",
         str(tools), VIRTUALENV]]
    steps += [
        [python27, "-m", "virtualenv", "--no-download", str(venv)],
        [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", *REQUIREMENTS],
        [str(venv / "bin" / "python"), "-c", "import autobahntestsuite"],
    ]
    with open(log, "w") as out:
        for argv in steps:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            env = python2_env({"PYTHONPATH": str(tools)} if "virtualenv" in argv else {})
            status = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
            if status != 0:
                tail = log.read_text(errors="replace").splitlines()[-15:]
                raise SetupFailed(f"{' '.join(argv[:4])} ... exited {status} (log: {log}):\n"
                                  + "\n".join(tail))


def python2_env(extra):
    """This environment without a Python 3 search path (a test's PYTHONPATH
    holds the repository), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, **extra}


# -- the processes ---------------------------------------------------------------

class Processes:
    """Every process this script starts; ``stop_all`` ends each one."""

    def __init__(self):
        self.procs = []

    def start(self, argv, **kwargs):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kwargs)
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def start_hpxd(processes, workdir):
    config = workdir / "hpxd.toml"
    config.write_text(
        f'[server]\nname = "autobahn"\ndata_dir = "{workdir / "data"}"\nshutdown_timeout = 5\n'
        f'[tcp]\nlisten = []\n'
        f'[web]\nlisten = ["tcp:0:interface={HOST}"]\necho_path = "/echo"\n')
    logfile = workdir / "twistd.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    with open(logfile, "wb") as out:
        proc = processes.start(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n",
             "--pidfile=", "hpxd", "--config", str(config)],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = logfile.read_text(errors="replace")
        port = re.search(r"hpxd web door(?: \(\w+\))* starting on (\d+)", text)
        if port and " ready " in text:
            return proc, int(port.group(1)), logfile
        if proc.poll() is not None:
            raise Failed(f"hpxd exited {proc.returncode}:\n{text}")
        time.sleep(0.05)
    raise Failed(f"hpxd did not start in {START_TIMEOUT}s:\n{logfile.read_text(errors='replace')}")


def run_wstest(processes, wstest_path, workdir, outdir, port, cases, exclude, timeout):
    spec = workdir / "fuzzingclient.json"
    spec.write_text(json.dumps({
        "outdir": str(outdir), "servers": [{"agent": "hpxd", "url": f"ws://{HOST}:{port}/echo"}],
        "cases": cases, "exclude-cases": exclude, "exclude-agent-cases": {}}))
    log = workdir / "wstest.log"
    with open(log, "wb") as out:
        proc = processes.start([str(wstest_path), "-m", "fuzzingclient", "-s", str(spec)],
                               cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                               env=python2_env({}))
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise Failed(f"wstest did not finish in {timeout}s (log: {log})") from None
    # wstest's exit status says little: the report is the verdict.
    if not (outdir / "index.json").exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise Failed(f"wstest exited {proc.returncode} without a report:\n{tail}")


# -- the verdict ------------------------------------------------------------------

def judge(index_file):
    """(results by case id, the cases that did not pass)."""
    results = json.loads(index_file.read_text())["hpxd"]
    bad = {case: r for case, r in results.items()
           if r["behavior"] not in PASSING or r["behaviorClose"] not in PASSING}
    return results, bad


def case_key(case):
    return tuple(int(part) for part in case.split("."))


def summary(results, exclude, seconds):
    tally = collections.Counter(r["behavior"] for r in results.values())
    groups = collections.defaultdict(float)
    for case, r in results.items():
        groups[case.split(".")[0]] += r["duration"] / 1000
    excluded = ", ".join(exclude) or "none"
    lines = [f"{len(results)} cases run in {seconds:.0f}s (excluded: {excluded})",
             "behaviour: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())),
             "seconds by group: " + ", ".join(
                 f"{g}.* {s:.1f}" for g, s in sorted(groups.items(), key=lambda i: int(i[0])))]
    return "\n".join(lines)


def table(bad):
    rows = [f"{'case':<10} {'behavior':<14} {'close':<14} {'close code':<10}"]
    for case in sorted(bad, key=case_key):
        r = bad[case]
        rows.append(f"{case:<10} {r['behavior']:<14} {r['behaviorClose']:<14} "
                    f"{r.get('remoteCloseCode')!s:<10}")
    return "\n".join(rows)


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=5) as response:
            return response.status == 200
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def run(args, processes):
    wstest_path = wstest(args.cache, find_python27(args.python27))
    if args.setup_only:
        print(f"wstest ready: {wstest_path}")
        return 0
    # A directory per run (config, logs, report), so two runs never meet;
    # removed after a pass unless --keep, kept after a failure to be read.
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=args.cache))
    passed = False
    try:
        passed = conformance(args, processes, wstest_path, workdir)
    finally:
        if passed and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"this run's config, logs and report (reports/index.html, when wstest "
                  f"finished) are kept in {workdir}")
    return 0


def conformance(args, processes, wstest_path, workdir):
    outdir = workdir / "reports"
    daemon, port, daemon_log = start_hpxd(processes, workdir)
    started = time.monotonic()
    run_wstest(processes, wstest_path, workdir, outdir, port, args.cases, args.exclude,
               args.timeout)
    seconds = time.monotonic() - started
    if daemon.poll() is not None or not healthy(port):
        raise Failed(f"hpxd did not survive the testsuite (log: {daemon_log})")
    processes.stop_all()
    results, bad = judge(outdir / "index.json")
    print(summary(results, args.exclude, seconds))
    if not results:
        raise Failed("the report holds no case")
    if bad:
        print(table(bad))
        raise Failed(f"{len(bad)} of {len(results)} cases did not pass")
    print("every case OK, NON-STRICT or INFORMATIONAL")
    return True


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cache = os.environ.get("HPXD_WSTEST_CACHE") or Path.home() / ".cache" / "hpxd-wstest"
    parser.add_argument("--cache", type=Path, default=Path(cache),
                        help="where the Python 2.7 virtualenv and kept runs are")
    parser.add_argument("--python27", help="the Python 2.7 interpreter (default: found)")
    parser.add_argument("--cases", type=_list, default=["*"], help='e.g. "1.*,2.*"')
    parser.add_argument("--exclude", type=_list, default=["9.*"], help='default "9.*"')
    # The whole run took 20 minutes on a busy 2-core machine: room to spare.
    parser.add_argument("--timeout", type=float, default=3600, help="seconds wstest may take")
    parser.add_argument("--keep", action="store_true",
                        help="keep the run's directory (config, logs, HTML report) after a pass")
    parser.add_argument("--setup-only", action="store_true",
                        help="make the virtualenv (if need be) and stop")
    return parser.parse_args(argv)


def _list(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def main(argv=None):
    args = parse_args(argv)
    # SIGTERM ends the run like Ctrl-C does: through the finally block.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    processes = Processes()
    try:
        return run(args, processes)
    except SetupFailed as e:
        print(f"bench/autobahn_testsuite.py: cannot make wstest: {e}", file=sys.stderr)
        return SETUP_FAILED
    except Failed as e:
        print(f"bench/autobahn_testsuite.py: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench/autobahn_testsuite.py: interrupted", file=sys.stderr)
        return 130
    finally:
        processes.stop_all()


if __name__ == "__main__":
    sys.exit(main())
