"""What a sysadmin does with twistd: check, print and reload the config, run
as an unprivileged user. Real twistd processes (issue 12, part A)."""

import os
import pwd
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import hpxd
from hpxd.core.passwords import hash_password
from tests.support import REPO, Daemon, RawClient, tcp_config

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
          "-n", "--pidfile=", "hpxd"]
ENV = dict(os.environ, PYTHONPATH=str(REPO))
FAST_LOGIN = "[auth]\nfailed_login_delay = 0.05\n"


def twistd(*args, cwd):
    proc = subprocess.run(TWISTD + list(args), cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.05)


# -- --print-config, --version, --check (A8) -------------------------------------

def test_print_config_prints_the_documented_defaults(tmp_path):
    status, out, err = twistd("--print-config", cwd=tmp_path)
    assert (status, err) == (0, "")
    assert out == (REPO / "config" / "hpxd.toml").read_text()
    assert not (tmp_path / "hpxd-data").exists()


def test_version_is_hpxd_s(tmp_path):
    status, out, _ = twistd("--version", cwd=tmp_path)
    assert status == 0 and out.startswith(f"hpxd {hpxd.__version__} (Twisted ")


def test_check_a_good_file_exits_0_and_starts_nothing(tmp_path):
    config = tmp_path / "good.toml"
    config.write_text('[tcp]\nlisten = ["tcp:7:interface=127.0.0.1"]\n'  # port 7: never bound
                      '[metrics]\nlisten = ["tcp:9:interface=127.0.0.1"]\n')
    status, out, err = twistd("--config", str(config), "--check", cwd=tmp_path)
    assert status == 0, err
    assert "configuration OK" in out and str(config) in out and "hpxd.demo" in out
    # Every listener it would open, by door.
    assert "tcp tcp:7:interface=127.0.0.1" in out and "web tcp:7008:" in out
    assert "metrics tcp:9:interface=127.0.0.1" in out
    assert not (tmp_path / "hpxd-data").exists()


def test_check_a_bad_file_exits_2_with_one_line_naming_the_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[sessions]\nlifespan_seconds = -5\n")
    status, out, err = twistd("--config", str(config), "--check", cwd=tmp_path)
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert status == 2
    assert len(lines) == 1 and "sessions.lifespan_seconds" in lines[0] and "bad.toml" in lines[0]


def test_check_warns_about_privileges_for_items_the_app_lacks(tmp_path):
    config = tmp_path / "typo.toml"
    config.write_text('[roles.guest]\nprivileges = { "catalgo" = ["view"] }\n')
    status, out, err = twistd("--config", str(config), "--check", cwd=tmp_path)
    assert status == 0
    assert "catalgo" in err and "guest" in err


def test_check_refuses_a_port_out_of_range_naming_the_listener(tmp_path):
    config = tmp_path / "port.toml"
    config.write_text('[tcp]\nlisten = ["tcp:99999"]\n')
    status, out, err = twistd("--config", str(config), "--check", cwd=tmp_path)
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert status == 2, out
    assert len(lines) == 1 and "tcp.listen[0]" in lines[0] and "99999" in lines[0]
    assert "0-65535" in lines[0]


def test_an_app_that_cannot_be_found_is_named_with_where_it_was_looked_for(tmp_path):
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "hpxd_test_lost_app.py").write_text("from hpxd.app import Task\ntask = Task('x')\n")
    config = tmp_path / "app.toml"
    config.write_text('[app]\nmodule = "hpxd_test_lost_app"\n')
    status, out, err = twistd("--config", str(config), cwd=tmp_path)
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert status == 2
    assert len(lines) == 1 and "app.module" in lines[0] and "PYTHONPATH" in lines[0]
    assert str(REPO) in lines[0]  # a directory it searched
    assert not (tmp_path / "hpxd-data").exists()


def test_a_listener_that_cannot_open_is_named_and_leaves_no_data_dir(tmp_path):
    import socket
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = tmp_path / "busy.toml"
    config.write_text(f'[tcp]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n'
                      '[web]\nlisten = []\n')
    try:
        status, out, err = twistd("--config", str(config), cwd=tmp_path)
    finally:
        taken.close()
    assert status == 1, out + err
    [line] = [line for line in (out + err).splitlines() if "hpxd cannot start" in line]
    assert "tcp door" in line and f"tcp.listen[0] 'tcp:{port}:interface=127.0.0.1" in line
    assert "Address already in use" in line
    # Nothing is left behind by a node that never ran.
    assert not (tmp_path / "hpxd-data").exists()


# -- running as another user (A3) --------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="twistd -u/-g needs root to switch")


@pytest.fixture
def open_dir():
    """A directory every user may enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="hpxd-uid-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=True)


@needs_root
def test_twistd_u_g_creates_data_dir_for_the_user_it_runs_as(tmp_path, open_dir):
    nobody = pwd.getpwnam("nobody")
    data_dir = open_dir / "data"
    config = tcp_config(f'[server]\ndata_dir = "{data_dir}"\n')
    daemon = Daemon(tmp_path, config, twistd_args=["-u", "nobody", "-g", str(nobody.pw_gid)])
    try:
        daemon.start()
        assert data_dir.stat().st_uid == nobody.pw_uid
        assert (data_dir / "hpxd.sqlite3").stat().st_uid == nobody.pw_uid
        client = RawClient(daemon.tcp_port)
        client.recv()
        session = client.call({})["session"]
        reply = client.call([{"fname": "catalog.list"}], session)
        assert reply["data"] == [{"fname": "catalog.list", "data": []}]
        client.close()
    finally:
        daemon.stop()


@needs_root
def test_a_database_the_user_cannot_write_is_named_at_start_up(tmp_path, open_dir):
    data_dir = open_dir / "data"
    data_dir.mkdir()
    (data_dir / "hpxd.sqlite3").write_bytes(b"")
    (data_dir / "hpxd.sqlite3").chmod(0o600)  # root's: nobody cannot open it
    config = tcp_config(f'[server]\ndata_dir = "{data_dir}"\n')
    daemon = Daemon(tmp_path, config, twistd_args=["-u", "nobody", "-g", "nogroup"])
    try:
        with pytest.raises(RuntimeError, match="exited 1"):
            daemon.start()
        [line] = [line for line in daemon.log().splitlines() if "hpxd cannot start" in line]
        assert str(data_dir / "hpxd.sqlite3") in line and "writable" in line
    finally:
        daemon.stop()


# -- SIGHUP reloads (A5) ----------------------------------------------------------------

def login(port, user, password):
    client = RawClient(port)
    client.recv()
    reply = client.call({"user": user, "password": password})
    client.close()
    return reply


def test_sighup_reloads_users_and_keeps_connections_open(daemons):
    old, new = hash_password("old-secret", log2_n=10), hash_password("new-secret", log2_n=10)
    daemon = daemons(tcp_config(FAST_LOGIN, users=[("alice", old, "user")]))
    kept = RawClient(daemon.tcp_port)
    kept.recv()
    session = kept.call({})["session"]
    assert login(daemon.tcp_port, "alice", "old-secret")["data"] == "Authenticated"

    daemon.config.write_text(tcp_config(FAST_LOGIN, users=[("alice", new, "user")]))
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in daemon.log(), what="the reload")
    assert login(daemon.tcp_port, "alice", "old-secret")["error"]["code"] == 411
    assert login(daemon.tcp_port, "alice", "new-secret")["data"] == "Authenticated"
    assert kept.call([{"fname": "add", "a": 1, "b": 2}], session)["data"][0]["data"] == 3

    daemon.config.write_text("[tcp]\nbogus = 1\n")  # invalid: the old config stays
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in daemon.log(), what="the refusal")
    refusals = [line for line in daemon.log().splitlines() if "reload refused" in line]
    assert len(refusals) == 1 and "tcp.bogus" in refusals[0]
    assert daemon.proc.poll() is None
    assert login(daemon.tcp_port, "alice", "new-secret")["data"] == "Authenticated"
    assert kept.call([{"fname": "add", "a": 2, "b": 2}], session)["data"][0]["data"] == 4
    kept.close()


def test_sighup_names_keys_that_wait_for_a_restart(daemons):
    base = '[tcp]\nlisten = ["tcp:0:interface=127.0.0.1"]\n[web]\nlisten = []\n'
    daemon = daemons(base)
    daemon.config.write_text(base.replace("[tcp]\n", "[tcp]\nidle_timeout = 60\n")
                             + '[server]\nname = "renamed"\n')
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in daemon.log(), what="the reload")
    [line] = [line for line in daemon.log().splitlines() if "reloaded" in line]
    waiting = line.split("next start:")[-1]
    assert "server.name" in waiting and "idle_timeout" not in waiting


# -- what the log says (B3) ----------------------------------------------------------------

def test_the_log_has_one_line_per_event_with_its_fields_and_no_secret(daemons):
    password, wrong = "Zebra-pw-42", "Wrong-pw-17"
    password_hash = hash_password(password, log2_n=10)
    daemon = daemons(tcp_config(FAST_LOGIN, users=[("root", password_hash, "admin")]))
    client = RawClient(daemon.tcp_port)
    client.recv()
    peer = "%s:%d" % client.sock.getsockname()
    session = client.call({})["session"]
    client.call([{"fname": "add", "a": 1, "b": 1}], session)
    client.close()
    wait_for(lambda: f"tcp connection from {peer} closed" in daemon.log(), what="the close line")
    assert login(daemon.tcp_port, "root", wrong)["error"]["code"] == 411
    admin = RawClient(daemon.tcp_port)
    admin.recv()
    admin_peer = "%s:%d" % admin.sock.getsockname()
    admin_session = admin.call({"user": "root", "password": password})["session"]
    admin.send("serverquit", session=admin_session)
    assert daemon.wait(15) == 0
    admin.close()
    log = daemon.log()
    lines = log.splitlines()

    def only(*parts):
        found = [line for line in lines if all(part in line for part in parts)]
        assert len(found) == 1, (parts, found)
        return found[0]
    only("tcp connection opened from", peer)
    closed = only("tcp connection from", peer, "closed")
    assert "guest" in closed and "2 messages" in closed and " s," in closed
    only("login for user 'root'", "failed")
    only("login for user 'root' from", admin_peer)
    only("serverquit from user 'root'", admin_peer)
    # The one listener is announced once, by the door's name (Twisted's own
    # "<factory> starting on <port>" line, which cannot be switched off, is
    # that line), and the start-up line names it again among all listeners.
    announced = [line for line in lines if "starting on" in line or "listening on" in line]
    assert len(announced) == 1, announced
    assert announced[0].endswith(f"hpxd tcp door starting on {daemon.tcp_port}")
    assert "HpxFactory" not in log
    ready = only("ready")
    assert "hpxd.demo" in ready and "memory" in ready and f"tcp 127.0.0.1:{daemon.tcp_port}" in ready
    assert str(daemon.config) in ready
    for secret in (password, wrong, password_hash, "$scrypt$"):
        assert secret not in log


def test_json_log_lines(tmp_path):
    """--logger=hpxd.logs.json_lines: every line of the log is one JSON event."""
    import json

    from twisted.logger import eventFromJSON, formatEvent
    config = tmp_path / "hpxd.toml"
    config.write_text(tcp_config())
    proc = subprocess.Popen(TWISTD[:-1] + ["--logger=hpxd.logs.json_lines", "hpxd", "--config",
                                           str(config)], cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    import threading
    watchdog = threading.Timer(20, proc.kill)  # never hang on a daemon that does not start
    watchdog.start()
    try:
        events = []
        for line in proc.stdout:
            json.loads(line)  # each line, alone, is JSON
            events.append(eventFromJSON(line))
            if "ready" in formatEvent(events[-1]):
                break
        ready = events[-1]
        assert ready["log_namespace"] == "hpxd.service.HpxdService"
        assert "hpxd.demo" in formatEvent(ready)
    finally:
        watchdog.cancel()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
