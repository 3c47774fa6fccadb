"""Password hashes: scrypt (memory-hard, in the standard library), PHC-style text.

    $scrypt$ln=15,r=8,p=1$<salt b64>$<hash b64>

Hashing and checking take tens of milliseconds and 32 MiB on purpose: callers
on the reactor thread check in a ``HashPool`` (the node has one), never on
the reactor and never in the reactor's shared thread pool.
"""

import base64
import hashlib
import hmac
import secrets

from twisted.application import service
from twisted.internet import defer
from twisted.internet.threads import deferToThread, deferToThreadPool
from twisted.python.threadpool import ThreadPool

from hpxd.core.deferreds import when_done

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
    """``verify_password`` in the reactor's shared thread pool; fires with a
    bool. For tools and unit tests only: a node checks in its ``HashPool``."""
    return deferToThread(verify_password, password, text)


class HashPool(service.Service):
    """A few threads of their own for password checks (``[auth]
    hash_threads``), started and stopped with the node.

    Each check takes ~32 MiB and a core for tens of milliseconds. In the
    reactor's shared pool a login flood would take all its threads, and
    what else runs there (Redis host names, reloads) would wait behind it;
    here the flood waits in this pool's queue and at most ``size`` checks
    run, and hold memory, at once.
    """

    def __init__(self, reactor, size=2):
        self.reactor = reactor
        self.pool = ThreadPool(minthreads=0, maxthreads=size, name="hpxd-passwords")
        self._stopping = None

    @property
    def size(self):
        return self.pool.max

    def resize(self, size):
        """At most ``size`` checks at once from now on (a reload)."""
        self.pool.adjustPoolsize(maxthreads=size)

    def verify(self, password, text):
        """``verify_password`` in this pool; fires with a bool. Checks asked
        for before ``startService`` wait for it."""
        return deferToThreadPool(self.reactor, self.pool, verify_password, password, text)

    def startService(self):
        super().startService()
        self.pool.start()

    def stopService(self):
        """Fires once the checks still queued are done and the threads have
        ended. The joining happens in a thread, not on the reactor."""
        super().stopService()
        if self._stopping is None:
            if self.pool.started:
                self._stopping = deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                                   self.pool.stop)
            else:  # never started: no thread to wait for
                self._stopping = defer.maybeDeferred(self.pool.stop)
        return when_done(self._stopping)


# Checked for unknown user names so that they cost as much time as known ones.
DUMMY_HASH = ("$scrypt$ln=15,r=8,p=1$y5Z2mVQ0x3f7kYbq2ZQ1Xw"
              "$Yb3m0W1lX9XzQ8c1nq4b0D7b6mJmVbq1qWgQz3m1b2c")
