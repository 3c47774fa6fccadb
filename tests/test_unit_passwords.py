"""hpxd/core/passwords.py (``python -m hpxd.passwd``: tests/test_passwd_cli.py)."""

import pytest
import pytest_twisted

from hpxd.core import passwords
from hpxd.core.passwords import DUMMY_HASH, hash_password, parse_hash, verify_password

PASSWORD = "correct horse battery staple"
HASH = hash_password(PASSWORD)  # the real cost, once per module


def test_hash_format_and_defaults():
    log2_n, r, p, salt, digest = parse_hash(HASH)
    assert HASH.startswith("$scrypt$ln=15,r=8,p=1$")
    assert (log2_n, r, p) == (passwords.LOG2_N, passwords.R, passwords.P)
    assert len(salt) == 16
    assert len(digest) == passwords.KEY_LEN
    assert PASSWORD not in HASH


def test_verify():
    assert verify_password(PASSWORD, HASH) is True
    assert verify_password(PASSWORD + "x", HASH) is False
    cheap = hash_password("x", log2_n=10)
    assert verify_password("", cheap) is False
    assert verify_password(None, cheap) is False


def test_salted():
    cheap = [hash_password("same", log2_n=10) for _ in range(2)]
    assert cheap[0] != cheap[1]
    assert all(verify_password("same", h) for h in cheap)


def test_unicode_password():
    h = hash_password("pässwörd ☃", log2_n=10)
    assert verify_password("pässwörd ☃", h)
    assert not verify_password("passwort ☃", h)


def test_dummy_hash_is_valid_and_matches_nothing_easy():
    assert parse_hash(DUMMY_HASH)[:3] == (15, 8, 1)


@pytest.mark.parametrize("garbage", [
    "", "plain-password", None, 42, "$scrypt$", "$bcrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA",
    "scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA$",
    "$scrypt$ln=15,r=8$c2FsdA$aGFzaA",            # p missing
    "$scrypt$ln=abc,r=8,p=1$c2FsdA$aGFzaA",       # not a number
    "$scrypt$ln15,r=8,p=1$c2FsdA$aGFzaA",         # no '='
    "$scrypt$ln=40,r=8,p=1$c2FsdA$aGFzaA",        # absurd cost
    "$scrypt$ln=5,r=8,p=1$c2FsdA$aGFzaA",         # too cheap
    "$scrypt$ln=15,r=8,p=1$$aGFzaA",              # no salt
    "$scrypt$ln=15,r=8,p=1$c2FsdA$",              # no digest
    "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA$extra",
])
def test_parse_hash_rejects_garbage(garbage):
    with pytest.raises(ValueError):
        parse_hash(garbage)


def test_verify_rejects_garbage_hash():
    with pytest.raises(ValueError):
        verify_password(PASSWORD, "not-a-hash")


@pytest_twisted.inlineCallbacks
def test_verify_in_thread():
    ok = yield passwords.verify_in_thread(PASSWORD, HASH)
    bad = yield passwords.verify_in_thread("nope", hash_password("x", log2_n=10))
    assert ok is True and bad is False

