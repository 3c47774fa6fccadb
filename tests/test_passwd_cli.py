"""``python -m hpxd.passwd``: usage, no password arguments, stdin and tty modes."""

import functools
import getpass
import os
import subprocess
import sys

import pytest

from hpxd import passwd
from hpxd.core.passwords import LOG2_N, hash_password, parse_hash, verify_password

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHEAP = 10  # scrypt cost of the in-process tests; the subprocesses use the default


def _run(args, stdin=b""):
    """Run the module as a real process; (exit status, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-m", "hpxd.passwd", *args], cwd=REPO,
                          env=env, input=stdin, capture_output=True, timeout=60)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


# -- usage and arguments ---------------------------------------------------

@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_exits_0(flag):
    code, out, err = _run([flag], b"should not be read\n")
    assert code == 0, err
    assert out.startswith("usage:")
    assert "hpxd.passwd" in out
    assert "stdin" in out
    assert "$scrypt$" not in out + err


@pytest.mark.parametrize("args", [
    ["--bogus"],
    ["-x"],
    ["s3cret-arg"],                 # the old "password as an argument"
    ["--", "s3cret-arg"],
    ["--help", "s3cret-arg"],
    ["-hs3cret-arg"],
    ["s3cret-arg", "--help"],
])
def test_arguments_are_refused_and_nothing_is_hashed(args):
    code, out, err = _run(args, b"from stdin\n")
    assert code == 2, (args, out, err)
    assert out == ""                 # no hash of the argument, nor of stdin
    assert err.startswith("usage:")
    assert "no arguments" in err
    assert "s3cret-arg" not in err   # a mistyped password is not echoed back


# -- stdin (not a terminal) ------------------------------------------------

@pytest.mark.parametrize("line, password", [
    (b"s3cret stdin\n", "s3cret stdin"),
    (b"s3cret stdin", "s3cret stdin"),               # echo -n
    (b"  spaced  \n", "  spaced  "),                 # only the newline goes
    (b"crlf\r\n", "crlf"),
    (b"first line\nsecond line\n", "first line"),    # exactly one line is read
    ("pässwörd ☃\n".encode(), "pässwörd ☃"),
])
def test_stdin_prints_the_hash_alone(line, password):
    code, out, err = _run([], line)
    assert code == 0, err
    assert out.endswith("\n") and out.count("\n") == 1   # capturable as is
    hash_text = out[:-1]
    assert hash_text.startswith("$scrypt$")
    assert parse_hash(hash_text)[0] == LOG2_N             # the users' default cost
    assert verify_password(password, hash_text)
    assert not verify_password(password + "x", hash_text)
    assert password not in out + err


@pytest.mark.parametrize("stdin", [b"\n", b"", b"\r\n"])
def test_empty_stdin_is_refused(stdin):
    code, out, err = _run([], stdin)
    assert code == 1, err
    assert out == ""
    assert "empty password" in err


# -- terminal (getpass) ----------------------------------------------------

class _Tty:
    def isatty(self):
        return True

    def readline(self):  # pragma: no cover - the tty path must use getpass
        raise AssertionError("read stdin instead of prompting")


@pytest.fixture
def tty(monkeypatch):
    """Make main() see a terminal; answer getpass prompts from a list; cheap scrypt."""
    answers, prompts = [], []

    def fake_getpass(prompt="Password: ", stream=None):
        prompts.append(prompt)
        return answers.pop(0)

    monkeypatch.setattr(sys, "stdin", _Tty())
    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    monkeypatch.setattr(passwd, "hash_password",
                        functools.partial(hash_password, log2_n=CHEAP))
    return answers, prompts


def test_tty_asks_twice_and_prints_the_hash(tty, capsys):
    answers, prompts = tty
    answers += ["s3cret tty", "s3cret tty"]
    assert passwd.main([]) == 0
    out, err = capsys.readouterr()
    assert len(prompts) == 2 and prompts[0] != prompts[1]
    hash_text = out.strip()
    assert out == hash_text + "\n"
    assert parse_hash(hash_text)[0] == CHEAP
    assert verify_password("s3cret tty", hash_text)
    assert "s3cret tty" not in out + err


def test_tty_mismatch_prints_no_hash(tty, capsys):
    answers, prompts = tty
    answers += ["s3cret tty", "s3cret ttz"]
    assert passwd.main([]) == 1
    out, err = capsys.readouterr()
    assert len(prompts) == 2
    assert out == ""
    assert "do not match" in err


def test_tty_empty_password_is_refused(tty, capsys):
    answers, prompts = tty
    answers += [""]
    assert passwd.main([]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "empty password" in err


def test_tty_arguments_are_refused_before_prompting(tty, capsys):
    answers, prompts = tty
    assert passwd.main(["s3cret-arg"]) == 2
    out, err = capsys.readouterr()
    assert prompts == [] and out == ""
    assert "s3cret-arg" not in err


def test_main_help_returns_0(capsys):
    assert passwd.main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage:")
