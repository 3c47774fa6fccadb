"""Load and validate the configuration, all of it, before anything starts.

The built-in defaults below are what ``config/hpxd.toml`` spells out; a test
keeps the two identical. ``load(path)`` returns a ``Config`` or raises
``ConfigError`` whose text is the one line printed to the sysadmin.
"""

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from types import SimpleNamespace
from urllib.parse import urlsplit

from hpxd.core.auth import PRIVILEGES, Role, User
from hpxd.core.passwords import parse_hash


class ConfigError(Exception):
    def __init__(self, where, key, problem):
        self.where, self.key, self.problem = where, key, problem
        super().__init__(f"{where}: {key}: {problem}")


def _str(v):
    return isinstance(v, str)


def _bool(v):
    return isinstance(v, bool)


def _pos_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _pos_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def _non_neg_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def _str_list(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


_ECHO_PATH = re.compile(r"^/[A-Za-z0-9_-]+$")


# section -> key -> (check, what the check wants, default)
SCHEMA = {
    "server": {
        "name": (_str, "a string", "hpxd"),
        "data_dir": (_str, "a string", "hpxd-data"),
        "shutdown_timeout": (_non_neg_number, "a number >= 0", 10),
        "listen_backlog": (_pos_int, "an integer > 0", 1024),
    },
    "tcp": {
        "listen": (_str_list, "a list of endpoint strings", ["tcp:7007:interface=127.0.0.1"]),
        "max_message_bytes": (_pos_int, "an integer > 0", 8 * 1024 * 1024),
        "handshake_timeout": (_non_neg_number, "a number >= 0", 30),
        "idle_timeout": (_non_neg_number, "a number >= 0", 900),
        "max_queued_bytes": (_pos_int, "an integer > 0", 4 * 1024 * 1024),
    },
    "web": {
        "listen": (_str_list, "a list of endpoint strings", ["tcp:7008:interface=127.0.0.1"]),
        "static_dir": (_str, "a string", ""),
        "max_body_bytes": (_pos_int, "an integer > 0", 1024 * 1024),
        "allowed_origins": (_str_list, "a list of origin patterns",
                            ["http://127.0.0.1:7008", "http://localhost:7008"]),
        "ws_ping_interval": (_non_neg_number, "a number >= 0", 30),
        "ws_ping_timeout": (_non_neg_number, "a number >= 0", 20),
        "ws_handshake_timeout": (_non_neg_number, "a number >= 0", 10),
        "max_queued_bytes": (_pos_int, "an integer > 0", 4 * 1024 * 1024),
        "echo_path": (lambda v: v == "" or (_str(v) and _ECHO_PATH.match(v) is not None),
                      '"" or one path segment like "/echo"', ""),
        "metrics": (_bool, "true or false", True),
        "max_upload_bytes": (_pos_int, "an integer > 0", 64 * 1024 * 1024),
        "ext_tokens": (lambda v: _str_list(v) and all(len(t) >= 16 for t in v),
                       "a list of strings of at least 16 characters", []),
    },
    "metrics": {
        "listen": (_str_list, "a list of endpoint strings", []),
    },
    "processes": {
        "lease_seconds": (lambda v: _non_neg_number(v) and v >= 1, "a number >= 1", 10),
    },
    "sessions": {
        "lifespan_seconds": (_pos_int, "an integer > 0", 1800),
        "connection_grace_seconds": (_non_neg_number, "a number >= 0", 10),
        "max_guest_sessions": (_pos_int, "an integer > 0", 100000),
        "purge_interval_seconds": (_pos_int, "an integer > 0", 60),
    },
    "forms": {
        "record_lock_timeout_seconds": (_pos_int, "an integer > 0", 900),
    },
    "backend": {
        "kind": (lambda v: v in ("memory", "redis"), '"memory" or "redis"', "memory"),
        "redis_url": (_str, "a string", "redis://127.0.0.1:6379/0"),
        "redis_pool_size": (_pos_int, "an integer > 0", 4),
        "redis_connect_timeout": (_non_neg_number, "a number >= 0", 5),
        "redis_reply_timeout": (_non_neg_number, "a number >= 0", 5),
        "redis_ca_file": (_str, "a path to a PEM file, or empty", ""),
    },
    "database": {
        "url": (_str, "a string", "sqlite:///{data_dir}/hpxd.sqlite3"),
        "pool_size": (_pos_int, "an integer > 0", 4),
        "connect_timeout": (_pos_number, "a number > 0", 5),
        "statement_timeout": (_pos_number, "a number > 0", 10),
        "max_rows": (_pos_int, "an integer > 0", 1000),
    },
    "auth": {
        "guest_allowed": (_bool, "true or false", True),
        "guest_role": (_str, "a string", "guest"),
        "failed_login_delay": (_non_neg_number, "a number >= 0", 1.0),
        "hash_threads": (_pos_int, "an integer > 0", 2),
    },
    "app": {
        "module": (_str, "a Python module path", "hpxd.demo"),
    },
}

# The sections with a "listen" list of endpoint strings (hpxd.doors.DOORS).
LISTENERS = ("tcp", "web", "metrics")

DEFAULT_ROLES = {
    "guest": {"privileges": {"*": ["view"]}},
    "user": {"privileges": {"*": ["view", "create", "edit", "delete"]}},
    "admin": {"admin": True, "server_commands": True},
}
ROLE_KEYS = {"admin": _bool, "server_commands": _bool, "privileges": dict}
USER_KEYS = ("name", "password_hash", "role")


@dataclass
class Config:
    path: str
    server: SimpleNamespace
    tcp: SimpleNamespace
    web: SimpleNamespace
    metrics: SimpleNamespace
    processes: SimpleNamespace
    sessions: SimpleNamespace
    forms: SimpleNamespace
    backend: SimpleNamespace
    database: SimpleNamespace
    auth: SimpleNamespace
    app: SimpleNamespace
    roles: dict = field(default_factory=dict)
    users: dict = field(default_factory=dict)

    @property
    def database_url(self):
        return self.database.url.replace("{data_dir}", self.server.data_dir)

    def resolve_paths(self):
        """Make relative paths absolute now: twistd --rundir changes directory later."""
        self.server.data_dir = os.path.abspath(self.server.data_dir)
        url = self.database_url
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            path = url[len("sqlite:///"):]
            self.database.url = "sqlite:///" + os.path.abspath(path)


def load(path=None, check_endpoint=None, web_paths=()):
    """Read ``path`` (None: built-in defaults) and validate every key.

    Two checks need what this module does not import (see ``from_dict``):
    ``check_endpoint(description)`` raises for an endpoint string Twisted
    cannot use (``check_endpoint`` below; it needs the reactor), and
    ``web_paths`` are the first path segments the web door serves already
    (``hpxd.doors.WEB_RESOURCES``), which ``[web] echo_path`` must avoid.
    ``hpxd.service.read_config`` passes both.
    """
    where = path or "<built-in defaults>"
    raw = _read(path) if path else {}
    return from_dict(raw, where, check_endpoint, web_paths)


def check_endpoint(description):
    """Raise if Twisted cannot parse ``description`` as a server endpoint
    (reading the TLS files of an ``ssl:`` one). Nothing listens."""
    # Imported here: importing the reactor installs it, and twistd must
    # choose the reactor before that.
    from twisted.internet import endpoints, reactor
    endpoints.serverFromString(reactor, description)


def _read(path):
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, "-", "file not found") from None
    except OSError as e:
        raise ConfigError(path, "-", f"cannot read file ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "-", f"not valid TOML ({e})") from None


def from_dict(raw, where="<dict>", check_endpoint=None, web_paths=()):
    """Validate ``raw``, the parsed TOML (``load`` tells the arguments)."""
    known = sorted(set(SCHEMA) | {"roles", "users"})
    for name in raw:
        if name not in known:
            raise ConfigError(where, name, _unknown("section", name, known))
    sections = {name: _section(raw.get(name, {}), name, keys, where)
                for name, keys in SCHEMA.items()}
    roles = _roles(raw.get("roles", DEFAULT_ROLES), where)
    users = _users(raw.get("users", []), roles, where)
    config = Config(path=where, roles=roles, users=users, **sections)
    _cross_checks(config, where, check_endpoint, web_paths)
    _default_backlogs(config)
    return config


def _section(values, name, keys, where):
    if not isinstance(values, dict):
        raise ConfigError(where, name, "must be a table [" + name + "]")
    for key in values:
        if key not in keys:
            raise ConfigError(where, f"{name}.{key}", _unknown("key", key, list(keys)))
    out = {}
    for key, (check, wanted, default) in keys.items():
        value = values.get(key, default)
        if not check(value):
            raise ConfigError(where, f"{name}.{key}", f"must be {wanted}, not {value!r}")
        out[key] = value
    return SimpleNamespace(**out)


def _roles(raw, where):
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(where, "roles", "must hold at least one [roles.NAME] table")
    roles = {}
    for name, spec in raw.items():
        key = f"roles.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(where, key, "must be a table")
        for k, v in spec.items():
            if k not in ROLE_KEYS:
                raise ConfigError(where, f"{key}.{k}", _unknown("key", k, list(ROLE_KEYS)))
            if k != "privileges" and not _bool(v):
                raise ConfigError(where, f"{key}.{k}", f"must be true or false, not {v!r}")
        privileges = spec.get("privileges", {})
        roles[name] = Role(name, spec.get("admin", False), spec.get("server_commands", False),
                           _privileges(privileges, f"{key}.privileges", where))
    return roles


def _privileges(raw, key, where):
    if not isinstance(raw, dict):
        raise ConfigError(where, key, 'must be a table like { "*" = ["view"] }')
    out = {}
    for item, privs in raw.items():
        if not _str_list(privs) or not set(privs) <= set(PRIVILEGES):
            raise ConfigError(where, f"{key}.{item}",
                              f"must be a list drawn from {list(PRIVILEGES)}, not {privs!r}")
        out[item] = frozenset(privs)
    return out


def _users(raw, roles, where):
    if not isinstance(raw, list):
        raise ConfigError(where, "users", "must be an array of [[users]] tables")
    users = {}
    for i, spec in enumerate(raw):
        key = f"users[{i}]"
        if not isinstance(spec, dict):
            raise ConfigError(where, key, "must be a table")
        for k in spec:
            if k not in USER_KEYS:
                raise ConfigError(where, f"{key}.{k}", _unknown("key", k, list(USER_KEYS)))
        for k in USER_KEYS:
            if not _str(spec.get(k)) or not spec.get(k):
                raise ConfigError(where, f"{key}.{k}", "is required and must be a non-empty string")
        name = spec["name"]
        if name in users:
            raise ConfigError(where, f"{key}.name", f"user {name!r} is defined twice")
        if spec["role"] not in roles:
            raise ConfigError(where, f"{key}.role", f"no role named {spec['role']!r}")
        try:
            parse_hash(spec["password_hash"])
        except ValueError as e:
            raise ConfigError(where, f"{key}.password_hash",
                              f"{e}; make one with 'python -m hpxd.passwd'") from None
        users[name] = User(name, spec["password_hash"], spec["role"])
    return users


def _unknown(what, name, known):
    """"unknown key; did you mean 'x'? (known: ...)": the problem of a name
    that is not in the list ``known``."""
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what}{hint} (known: {', '.join(known)})"


def _cross_checks(config, where, check_endpoint, web_paths):
    if config.auth.guest_role not in config.roles:
        raise ConfigError(where, "auth.guest_role", f"no role named {config.auth.guest_role!r}")
    if config.backend.kind == "redis":
        _check_redis_url(config.backend.redis_url, where)
        _check_readable(config.backend.redis_ca_file, "backend.redis_ca_file", where)
    _check_database_url(config, where)
    if config.web.echo_path[1:] in web_paths:
        raise ConfigError(where, "web.echo_path",
                          f"{config.web.echo_path!r} is a path the web door serves already "
                          f"(taken: {', '.join('/' + s for s in sorted(web_paths))})")
    for door in LISTENERS:
        for i, desc in enumerate(getattr(config, door).listen):
            key = f"{door}.listen[{i}]"
            _check_port(desc, key, where)
            if check_endpoint is not None:
                try:
                    check_endpoint(desc)
                except Exception as e:
                    raise ConfigError(where, key, f"bad endpoint {desc!r} ({e})") from None
            _check_socket_dir(desc, key, where)


def _check_database_url(config, where):
    url = config.database.url
    if url.startswith(("postgresql://", "postgresql+psycopg://")):
        problem = _postgresql_url_problem(url)
    else:
        problem = _sqlite_url_problem(config.database_url)
    if problem:
        raise ConfigError(where, "database.url",
                          f"{problem}: it must look like sqlite:///PATH, three slashes and "
                          "then a relative path or an /absolute one (\"{data_dir}\" allowed), "
                          "or sqlite:///:memory:, or postgresql://USER@HOST[:PORT]/DATABASE; "
                          f"not {url!r}")


def _sqlite_url_problem(url):
    # Anything else used to be opened somehow: "sqlite://x.db" or "sqlite:///"
    # gave SQLite an empty path, a temporary database lost at every restart,
    # and a ?query or #fragment would be dropped without a word.
    path = url[len("sqlite:///"):]
    if not url.startswith("sqlite:///"):
        return "not a sqlite:/// or postgresql:// URL"
    if not path or path.endswith("/") or "?" in path or "#" in path:
        return "not a file path"
    return None


def _postgresql_url_problem(url):
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError:
        return "the port is not a number"
    database = parts.path[1:]
    if not database or "/" in database:
        return "no database name"
    if parts.fragment:
        return "a #fragment"
    return None


# Endpoint types whose first argument (or "port=") is a TCP port. Twisted
# takes any integer; only bind() refuses one out of range, at start-up.
PORT_TYPES = ("tcp", "tcp6", "ssl")


def _check_port(description, key, where):
    kind, args, options = _endpoint(description) or ("", [], {})
    port = options.get("port", args[0] if args else "")
    if kind not in PORT_TYPES:
        return
    try:
        number = int(port)
    except ValueError:
        return  # not a number: the endpoint check names it as Twisted does
    if not 0 <= number <= 65535:
        raise ConfigError(where, key, f"port {number} of {description!r} is out of range: "
                                      "a port is 0-65535 (0: any free one)")


def _check_socket_dir(description, key, where):
    """A unix socket's directory must be there now: otherwise start-up fails
    later with a line about the socket's .lock file."""
    kind, args, options = _endpoint(description) or ("", [], {})
    path = options.get("address", args[0] if args else "")
    if kind != "unix" or path[:1] in ("", "\0"):  # "\0": Linux's abstract namespace, no file
        return
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise ConfigError(where, key, f"the directory {directory!r} of the unix socket "
                                      f"{path!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(where, key, f"the directory {directory!r} of the unix socket "
                                      f"{path!r} is not writable")


def _endpoint(description):
    """(type, positional arguments, options) as Twisted reads an endpoint
    string, "haproxy:" unwrapped; None if it ends in a lone backslash."""
    fields = _fields(description)
    if fields is None:
        return None
    args = [value for name, value in fields if name is None]
    options = {name: value for name, value in fields if name is not None}
    if args[:1] == ["haproxy"]:
        args = args[1:]
    return (args[0] if args else ""), args[1:], options


def _fields(description):
    """Twisted's strports syntax: ":" separates fields, the first "=" of a
    field names it, "\\" escapes the next character. [(name or None, value)]."""
    fields, name, value = [], None, ""
    chars = iter(description)
    for c in chars:
        if c == "\\":
            c = next(chars, None)
            if c is None:
                return None
            value += c
        elif c == ":":
            fields.append((name, value))
            name, value = None, ""
        elif c == "=" and name is None:
            name, value = value, ""
        else:
            value += c
    fields.append((name, value))
    return fields


# Endpoint types whose listen queue length can be set, and how many positional
# arguments (after the type) reach the backlog: "tcp:7007:127.0.0.1:100" sets
# it without "backlog=" (Twisted's _parseTCP, _parseUNIX, _parseSSL and the
# tcp6 parser). "haproxy:" wraps one of these and passes its options on.
BACKLOG_POSITION = {"tcp": 3, "unix": 3, "ssl": 6, "tcp6": 2}


def with_backlog(description, backlog):
    """``description`` with ":backlog=N" added if its type takes a backlog and
    it sets none (Twisted's default of 50 drops connections in a burst)."""
    kind, args, options = _endpoint(description) or ("", [], {})
    position = BACKLOG_POSITION.get(kind)
    if position is None or "backlog" in options or len(args) >= position:
        return description
    return f"{description}:backlog={backlog}"


def _default_backlogs(config):
    # Here, after the endpoint check, so errors quote the strings as written;
    # the doors then listen on the rewritten ones.
    for name in LISTENERS:
        door = getattr(config, name)
        door.listen = [with_backlog(d, config.server.listen_backlog) for d in door.listen]


def unknown_privilege_items(config, task):
    """Warnings, one line each, for role privileges naming no item of ``task``:
    such an entry grants nothing, which is most likely a typo."""
    known = {item.privilege_key for item in task.items()} | {"*"}
    lines = []
    for role in config.roles.values():
        for name in role.privileges:
            if name not in known:
                lines.append(f"roles.{role.name}.privileges: {name!r} is no item of the app "
                             f"{task.name!r}, so it grants nothing{_did_you_mean(name, known)}")
    return lines


def _did_you_mean(name, known):
    close = difflib.get_close_matches(name, known, n=1) or [
        key for key in sorted(known) if key.rpartition(".")[2] == name][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_readable(path, key, where):
    if not path:
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise ConfigError(where, key, f"cannot read {path!r} ({e.strerror})") from None


def _check_redis_url(url, where):
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(where, "backend.redis_url",
                          f"must look like redis://HOST:PORT/DB or rediss://..., not {url!r}")
    try:
        parts.port
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ValueError(f"database number {db!r} is not an integer")
    except ValueError as e:
        raise ConfigError(where, "backend.redis_url", str(e)) from None
