"""Password hashes: scrypt (memory-hard, in the standard library), PHC-style text.

    $scrypt$ln=15,r=8,p=1$<salt b64>$<hash b64>

Hashing and checking take tens of milliseconds and 32 MiB on purpose: callers
on the reactor thread must use ``verify_in_thread``.
"""

import base64
import hashlib
import hmac
import secrets

from twisted.internet.threads import deferToThread

LOG2_N, R, P = 15, 8, 1
KEY_LEN = 32
MAXMEM = 64 * 1024 * 1024


def _b64(raw):
    return base64.b64encode(raw).decode().rstrip("=")


def _unb64(text):
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password, salt, log2_n, r, p):
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2 ** log2_n,
                          r=r, p=p, dklen=KEY_LEN, maxmem=MAXMEM)


def hash_password(password, log2_n=LOG2_N):
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, log2_n, R, P)
    return f"$scrypt$ln={log2_n},r={R},p={P}${_b64(salt)}${_b64(digest)}"


def parse_hash(text):
    """Split a hash into its parameters; ValueError names what is wrong."""
    parts = text.split("$") if isinstance(text, str) else []
    if len(parts) != 5 or parts[0] != "" or parts[1] != "scrypt":
        raise ValueError("not an scrypt hash made by 'python -m hpxd.passwd'")
    try:
        params = dict(kv.split("=", 1) for kv in parts[2].split(","))
        log2_n, r, p = int(params["ln"]), int(params["r"]), int(params["p"])
        salt, digest = _unb64(parts[3]), _unb64(parts[4])
    except (KeyError, ValueError) as e:
        raise ValueError(f"malformed scrypt hash ({e})") from None
    if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16 and salt and digest):
        raise ValueError("scrypt parameters out of range")
    return log2_n, r, p, salt, digest


def verify_password(password, text):
    """Constant-time check of ``password`` against a stored hash (blocking)."""
    log2_n, r, p, salt, digest = parse_hash(text)
    if not isinstance(password, str):
        password = ""
    candidate = _scrypt(password, salt, log2_n, r, p)
    return hmac.compare_digest(candidate, digest)


def verify_in_thread(password, text):
    """``verify_password`` off the reactor thread; fires with a bool."""
    return deferToThread(verify_password, password, text)


# Checked for unknown user names so that they cost as much time as known ones.
DUMMY_HASH = ("$scrypt$ln=15,r=8,p=1$y5Z2mVQ0x3f7kYbq2ZQ1Xw"
              "$Yb3m0W1lX9XzQ8c1nq4b0D7b6mJmVbq1qWgQz3m1b2c")
