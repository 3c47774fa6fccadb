"""hpxd/config.py: defaults, every section, and one clear ConfigError per mistake."""

import os
import subprocess
import sys
import textwrap

import pytest

from hpxd import config as configmod
from hpxd.config import ConfigError, load
from hpxd.core.auth import Role, User
from hpxd.core.passwords import hash_password
from hpxd.config import check_endpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# ln=10 is the cheapest cost parse_hash accepts: fast enough to make per module.
HASH = hash_password("pw", log2_n=10)


def write(tmp_path, text, name="hpxd.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def config_error(tmp_path, text, key, check=None):
    """Load ``text``; assert a ConfigError naming the file and ``key``."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path, check)
    error = info.value
    assert error.where == path
    assert error.key == key
    line = str(error)
    assert path in line and key in line
    assert "\n" not in line
    return error


# -- defaults ---------------------------------------------------------------

def test_defaults():
    config = load()
    assert config.path == "<built-in defaults>"
    assert config.server.name == "hpxd"
    assert config.server.listen_backlog == 1024
    # Every listener gets the backlog (see test_backlog_added).
    assert config.tcp.listen == ["tcp:7007:interface=127.0.0.1:backlog=1024"]
    assert config.tcp.max_message_bytes == 8 * 1024 * 1024
    assert config.web.listen == ["tcp:7008:interface=127.0.0.1:backlog=1024"]
    assert config.metrics.listen == []  # no listener of its own for /metrics
    assert config.sessions.lifespan_seconds == 1800
    assert config.sessions.connection_grace_seconds == 10
    assert config.backend.kind == "memory"
    assert config.backend.redis_url == "redis://127.0.0.1:6379/0"
    assert config.auth.guest_allowed is True
    assert config.auth.guest_role == "guest"
    assert config.app.module == "hpxd.demo"
    assert config.database_url == "sqlite:///hpxd-data/hpxd.sqlite3"
    # No built-in user: nobody skips the password.
    assert config.users == {}
    assert set(config.roles) == {"guest", "user", "admin"}
    assert config.roles["admin"].admin and config.roles["admin"].server_commands
    assert not config.roles["guest"].server_commands
    assert config.roles["guest"].allows("anything", "view")
    assert not config.roles["guest"].allows("anything", "edit")


def test_defaults_pass_the_endpoint_check():
    load(None, check_endpoint)


def test_empty_file_is_the_defaults(tmp_path):
    config = load(write(tmp_path, ""))
    defaults = load()
    for section in configmod.SCHEMA:
        assert vars(getattr(config, section)) == vars(getattr(defaults, section))
    assert config.roles == defaults.roles


def test_every_section_parsed(tmp_path):
    path = write(tmp_path, f"""
        [server]
        name = "node-a"
        data_dir = "/var/lib/hpxd"
        shutdown_timeout = 2.5

        [tcp]
        listen = ["tcp:0:interface=127.0.0.1", "unix:{tmp_path}/hpxd.sock"]
        max_message_bytes = 1000
        handshake_timeout = 3
        idle_timeout = 0

        [web]
        listen = []
        static_dir = "static"
        max_body_bytes = 2000
        allowed_origins = ["https://app.example.com:*"]

        [sessions]
        lifespan_seconds = 60
        connection_grace_seconds = 0.5
        purge_interval_seconds = 7

        [backend]
        kind = "redis"
        redis_url = "redis://10.0.0.5:6380/3"
        redis_pool_size = 2
        redis_connect_timeout = 1
        redis_reply_timeout = 2

        [database]
        url = "sqlite:///{{data_dir}}/other.db"

        [auth]
        guest_allowed = false
        guest_role = "visitor"
        failed_login_delay = 0.25

        [app]
        module = "myapp"

        [roles.visitor]
        privileges = {{ "*" = ["view"], "catalog" = [] }}

        [roles.editor]
        privileges = {{ "*" = ["view"], "catalog" = ["view", "edit"] }}

        [roles.boss]
        admin = true
        server_commands = true

        [[users]]
        name = "alice"
        password_hash = "{HASH}"
        role = "editor"

        [[users]]
        name = "bob"
        password_hash = "{HASH}"
        role = "boss"
    """)
    config = load(path, check_endpoint)
    assert config.path == path
    assert config.server.name == "node-a"
    assert config.server.data_dir == "/var/lib/hpxd"
    assert config.server.shutdown_timeout == 2.5
    assert config.tcp.listen[1].startswith("unix:")
    assert config.tcp.max_message_bytes == 1000
    assert config.tcp.handshake_timeout == 3
    assert config.tcp.idle_timeout == 0
    assert config.web.listen == []
    assert config.web.static_dir == "static"
    assert config.web.max_body_bytes == 2000
    assert config.web.allowed_origins == ["https://app.example.com:*"]
    assert config.sessions.lifespan_seconds == 60
    assert config.sessions.connection_grace_seconds == 0.5
    assert config.sessions.purge_interval_seconds == 7
    assert config.backend.kind == "redis"
    assert config.backend.redis_url == "redis://10.0.0.5:6380/3"
    assert config.backend.redis_pool_size == 2
    assert config.database_url == "sqlite:////var/lib/hpxd/other.db"
    assert config.auth.guest_allowed is False
    assert config.auth.guest_role == "visitor"
    assert config.auth.failed_login_delay == 0.25
    assert config.app.module == "myapp"
    # [roles.*] replaces the default roles entirely.
    assert set(config.roles) == {"visitor", "editor", "boss"}
    assert config.roles["editor"] == Role("editor", False, False, {
        "*": frozenset({"view"}), "catalog": frozenset({"view", "edit"})})
    assert config.roles["visitor"].allows("other", "view")
    assert not config.roles["visitor"].allows("catalog", "view")
    assert config.roles["boss"].admin and config.roles["boss"].server_commands
    assert config.users == {"alice": User("alice", HASH, "editor"),
                            "bob": User("bob", HASH, "boss")}


# -- one error per mistake ----------------------------------------------------

def test_unknown_section(tmp_path):
    error = config_error(tmp_path, "[bogus]\nx = 1\n", "bogus")
    assert "unknown section" in error.problem


def test_section_not_a_table(tmp_path):
    config_error(tmp_path, "tcp = 5\n", "tcp")


def test_unknown_key(tmp_path):
    error = config_error(tmp_path, "[tcp]\nmax_mesage_bytes = 10\n", "tcp.max_mesage_bytes")
    assert "unknown key" in error.problem
    assert "max_message_bytes" in error.problem  # the known keys are listed


@pytest.mark.parametrize("text, key, meant", [
    ("[tcp]\nmax_mesage_bytes = 10\n", "tcp.max_mesage_bytes", "max_message_bytes"),
    ("[tpc]\nlisten = []\n", "tpc", "tcp"),
    ("[auth]\nguest_alowed = true\n", "auth.guest_alowed", "guest_allowed"),
    ("[roles.boss]\nserver_command = true\n", "roles.boss.server_command", "server_commands"),
    ('[[users]]\nname = "a"\nrole = "guest"\npasword_hash = "x"\n', "users[0].pasword_hash",
     "password_hash"),
])
def test_unknown_names_suggest_the_nearest_known_one(tmp_path, text, key, meant):
    error = config_error(tmp_path, text, key)
    assert f"did you mean {meant!r}?" in error.problem


def test_an_unknown_key_like_no_known_one_suggests_nothing(tmp_path):
    error = config_error(tmp_path, "[tcp]\nzzzzzz = 1\n", "tcp.zzzzzz")
    assert "did you mean" not in error.problem and "known: listen" in error.problem


@pytest.mark.parametrize("text, key", [
    ('[tcp]\nmax_message_bytes = "big"\n', "tcp.max_message_bytes"),
    ("[tcp]\nmax_message_bytes = 0\n", "tcp.max_message_bytes"),
    ("[tcp]\nmax_message_bytes = true\n", "tcp.max_message_bytes"),
    ("[tcp]\nmax_message_bytes = 1.5\n", "tcp.max_message_bytes"),
    ("[tcp]\nidle_timeout = -1\n", "tcp.idle_timeout"),
    ('[tcp]\nlisten = "tcp:7007"\n', "tcp.listen"),
    ("[tcp]\nlisten = [7007]\n", "tcp.listen"),
    ("[auth]\nguest_allowed = 1\n", "auth.guest_allowed"),
    ('[auth]\nguest_allowed = "yes"\n', "auth.guest_allowed"),
    ("[server]\nname = 3\n", "server.name"),
    ('[backend]\nkind = "mongo"\n', "backend.kind"),
    ("[sessions]\nlifespan_seconds = 0\n", "sessions.lifespan_seconds"),
    ("[app]\nmodule = []\n", "app.module"),
])
def test_wrong_type(tmp_path, text, key):
    error = config_error(tmp_path, text, key)
    assert error.problem.startswith("must be")


@pytest.mark.parametrize("text, key", [
    ('[roles.r]\nprivileges = { "*" = ["fly"] }\n', "roles.r.privileges.*"),
    ('[roles.r]\nprivileges = { "catalog" = "view" }\n', "roles.r.privileges.catalog"),
    ('[roles.r]\nprivileges = ["view"]\n', "roles.r.privileges"),
    ('[roles.r]\nadmin = "yes"\n', "roles.r.admin"),
    ("[roles.r]\nsuperuser = true\n", "roles.r.superuser"),
    ("[roles]\nr = 1\n", "roles.r"),
])
def test_bad_role(tmp_path, text, key):
    config_error(tmp_path, text, key)


def test_user_with_unknown_role(tmp_path):
    error = config_error(tmp_path, f"""
        [[users]]
        name = "alice"
        password_hash = "{HASH}"
        role = "wizard"
    """, "users[0].role")
    assert "wizard" in error.problem


@pytest.mark.parametrize("bad", ["secret", "$scrypt$ln=15$abc$def", "$bcrypt$x$y$z",
                                 "$scrypt$ln=40,r=8,p=1$c2FsdA$aGFzaA"])
def test_user_with_bad_password_hash(tmp_path, bad):
    error = config_error(tmp_path, f"""
        [[users]]
        name = "alice"
        password_hash = "{bad}"
        role = "user"
    """, "users[0].password_hash")
    assert "hpxd.passwd" in error.problem
    assert bad not in str(error) or bad == "secret"  # the problem, not a dump


def test_duplicate_user(tmp_path):
    error = config_error(tmp_path, f"""
        [[users]]
        name = "alice"
        password_hash = "{HASH}"
        role = "user"

        [[users]]
        name = "alice"
        password_hash = "{HASH}"
        role = "admin"
    """, "users[1].name")
    assert "twice" in error.problem


@pytest.mark.parametrize("text, key", [
    ('[[users]]\nname = "a"\nrole = "user"\n', "users[0].password_hash"),
    (f'[[users]]\nname = ""\npassword_hash = "{HASH}"\nrole = "user"\n', "users[0].name"),
    (f'[[users]]\nname = "a"\npassword = "x"\npassword_hash = "{HASH}"\nrole = "user"\n',
     "users[0].password"),
    ('users = "alice"\n', "users"),
])
def test_bad_user_entries(tmp_path, text, key):
    config_error(tmp_path, text, key)


def test_guest_role_not_defined(tmp_path):
    config_error(tmp_path, '[auth]\nguest_role = "visitor"\n', "auth.guest_role")


def test_own_roles_without_the_guest_role(tmp_path):
    # Defining roles replaces the defaults, so "guest" must be defined again.
    config_error(tmp_path, '[roles.user]\nprivileges = { "*" = ["view"] }\n', "auth.guest_role")


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "redis://", "redis://h:notaport/0",
                                 "redis://h:6379/zero", "127.0.0.1:6379"])
def test_bad_redis_url(tmp_path, url):
    config_error(tmp_path, f'[backend]\nkind = "redis"\nredis_url = "{url}"\n',
                 "backend.redis_url")


def test_redis_url_not_checked_for_memory_backend(tmp_path):
    load(write(tmp_path, '[backend]\nkind = "memory"\nredis_url = "nonsense"\n'))


@pytest.mark.parametrize("url", [
    "postgres://db/hpxd",
    "sqlite://relative.db",          # two slashes: was a temporary database (issue 12 A2)
    "sqlite:relative.db",
    "sqlite:///",                    # no path: a temporary database too
    "sqlite:///{data_dir}/",         # a directory
    "sqlite:///hpxd.sqlite3?mode=ro",  # the query would be dropped
    "sqlite:///hpxd.sqlite3#x",
    "SQLITE:///hpxd.sqlite3",
    "",
])
def test_bad_database_url(tmp_path, url):
    error = config_error(tmp_path, f'[database]\nurl = "{url}"\n', "database.url")
    assert "sqlite:///PATH" in error.problem


@pytest.mark.parametrize("url, expected", [
    ("sqlite:///rel/x.db", "sqlite:///{cwd}/rel/x.db"),
    ("sqlite:////abs/x.db", "sqlite:////abs/x.db"),
    ("sqlite:///{data_dir}/x.db", "sqlite:///{cwd}/hpxd-data/x.db"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
])
def test_good_database_url(tmp_path, url, expected):
    config = load(write(tmp_path, f'[database]\nurl = "{url}"\n'))
    config.resolve_paths()
    assert config.database_url == expected.format(cwd=os.getcwd())


@pytest.mark.parametrize("text, key, fragment", [
    ('[tcp]\nlisten = ["tcp:notaport"]\n', "tcp.listen[0]", "tcp:notaport"),
    ('[tcp]\nlisten = ["ssl:7443:privateKey=/nonexistent.pem"]\n', "tcp.listen[0]",
     "/nonexistent.pem"),
    ('[web]\nlisten = ["tcp:0", "carrierpigeon:7"]\n', "web.listen[1]", "carrierpigeon"),
    ('[metrics]\nlisten = ["tcp:notaport"]\n', "metrics.listen[0]", "tcp:notaport"),
])
def test_bad_endpoint(tmp_path, text, key, fragment):
    error = config_error(tmp_path, text, key, check=check_endpoint)
    assert fragment in error.problem


@pytest.mark.parametrize("text, key, port", [
    ('[tcp]\nlisten = ["tcp:99999"]\n', "tcp.listen[0]", "99999"),
    ('[tcp]\nlisten = ["tcp:0", "tcp:port=65536:interface=127.0.0.1"]\n', "tcp.listen[1]",
     "65536"),
    ('[tcp]\nlisten = ["tcp:-1"]\n', "tcp.listen[0]", "-1"),
    ('[web]\nlisten = ["tcp6:70000:interface=\\\\:\\\\:1"]\n', "web.listen[0]", "70000"),
    ('[web]\nlisten = ["ssl:65536:privateKey=/nonexistent.pem"]\n', "web.listen[0]", "65536"),
    ('[metrics]\nlisten = ["haproxy:tcp:99999"]\n', "metrics.listen[0]", "99999"),
])
@pytest.mark.parametrize("check", [None, check_endpoint])
def test_port_out_of_range(tmp_path, text, key, port, check):
    """Twisted parses these; only bind() refused them, at start, naming no listener."""
    error = config_error(tmp_path, text, key, check=check)
    assert f"port {port}" in error.problem and "0-65535" in error.problem


@pytest.mark.parametrize("description", ["tcp:0", "tcp:65535:interface=127.0.0.1",
                                         "tcp:port=1", "haproxy:tcp:7007", "tcp6:65535"])
def test_ports_in_range(tmp_path, description):
    load(write(tmp_path, f'[tcp]\nlisten = ["{description}"]\n'), check_endpoint)


def test_an_echo_path_on_a_path_the_web_door_serves(tmp_path):
    """The caller names the web door's paths (config.py knows no door)."""
    with pytest.raises(ConfigError) as info:
        configmod.from_dict({"web": {"echo_path": "/ws"}}, web_paths={"ws", "static"})
    assert info.value.key == "web.echo_path" and "/static, /ws" in info.value.problem
    configmod.from_dict({"web": {"echo_path": "/echo"}}, web_paths={"ws", "static"})


def test_the_service_checks_the_echo_path_against_the_registered_paths(tmp_path):
    from hpxd.doors import WEB_RESOURCES
    from hpxd.service import read_config
    for segment in WEB_RESOURCES:
        with pytest.raises(ConfigError) as info:
            read_config(write(tmp_path, f'[web]\necho_path = "/{segment}"\n'))
        assert info.value.key == "web.echo_path"


def test_endpoints_not_checked_without_checker(tmp_path):
    load(write(tmp_path, '[tcp]\nlisten = ["tcp:notaport"]\n'))


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert path in str(info.value)
    assert "not found" in str(info.value)


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "[tcp\nlisten = \n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert path in str(info.value)
    assert "TOML" in str(info.value)


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path))  # a directory
    assert str(tmp_path) in str(info.value)


# -- listen backlog (issue 12 A4) ----------------------------------------------

@pytest.mark.parametrize("description, expected", [
    ("tcp:7007", "tcp:7007:backlog=99"),
    ("tcp:7007:interface=127.0.0.1", "tcp:7007:interface=127.0.0.1:backlog=99"),
    ("tcp6:7007:interface=\\:\\:1", "tcp6:7007:interface=\\:\\:1:backlog=99"),
    ("ssl:7443:privateKey=k.pem:certKey=c.pem",
     "ssl:7443:privateKey=k.pem:certKey=c.pem:backlog=99"),
    ("unix:/run/hpxd/hpxd.sock", "unix:/run/hpxd/hpxd.sock:backlog=99"),
    ("unix:/run/hpxd/hpxd.sock:mode=660", "unix:/run/hpxd/hpxd.sock:mode=660:backlog=99"),
    ("haproxy:tcp:7007:interface=10.0.0.1", "haproxy:tcp:7007:interface=10.0.0.1:backlog=99"),
    ("haproxy:unix:/run/h.sock", "haproxy:unix:/run/h.sock:backlog=99"),
    # Escaped: "backlog=5" is part of the path, not an option.
    ("unix:/tmp/a\\:backlog=5.sock", "unix:/tmp/a\\:backlog=5.sock:backlog=99"),
    ("tcp:7007:xbacklog=5", "tcp:7007:xbacklog=5:backlog=99"),
])
def test_backlog_added(description, expected):
    assert configmod.with_backlog(description, 99) == expected


@pytest.mark.parametrize("description", [
    "tcp:7007:backlog=5",
    "tcp:7007:backlog=5:interface=127.0.0.1",
    "tcp:7007:127.0.0.1:5",               # backlog given by position
    "tcp6:7007:5",
    "ssl:7443:privateKey=k.pem:backlog=5",
    "ssl:7443:k.pem:c.pem:TLSv1_2_METHOD:0.0.0.0:5",
    "unix:/run/h.sock:backlog=5",
    "unix:/run/h.sock:666:5",
    "haproxy:tcp:7007:backlog=5",
    "haproxy:tcp:7007:0.0.0.0:5",
    "systemd:domain=INET:index=0",        # the socket is made by systemd
    "haproxy:systemd:domain=INET:index=0",
    "stdio:",
    "carrierpigeon:7",
    "TCP:7007",                           # Twisted refuses it; leave its error alone
    "tcp:7007\\",                         # a lone backslash: ":backlog" would be escaped
    "",
])
def test_backlog_left_alone(description):
    assert configmod.with_backlog(description, 99) == description


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed key and certificate, so Twisted can parse ssl: strings."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    path = tmp_path_factory.mktemp("tls") / "server.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
                     + cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


@pytest.mark.parametrize("description, backlog", [
    ("tcp:0:interface=127.0.0.1", 99),
    ("tcp:0:backlog=5", 5),
    ("tcp:0:127.0.0.1:5", 5),
    ("tcp6:0:interface=\\:\\:1", 99),
    ("tcp6:0:5", 5),
    ("ssl:0:privateKey={pem}", 99),
    ("ssl:0:{pem}:{pem}:TLSv1_2_METHOD:0.0.0.0:5", 5),
    ("unix:{dir}/a\\:b.sock", 99),
    ("unix:{dir}/a.sock:666:5", 5),
    ("haproxy:tcp:0", 99),
    ("haproxy:unix:{dir}/a.sock:mode=660", 99),
])
# The positional ssl: string names a TLS method, which Twisted deprecates.
@pytest.mark.filterwarnings("ignore:Passing method:DeprecationWarning")
def test_twisted_reads_the_backlog(tmp_path, tls_files, description, backlog):
    """What Twisted's own parser makes of the rewritten string."""
    from twisted.internet import endpoints, reactor
    description = description.format(pem=tls_files, dir=tmp_path)
    endpoint = endpoints.serverFromString(reactor, configmod.with_backlog(description, 99))
    endpoint = getattr(endpoint, "_wrappedEndpoint", endpoint)  # haproxy: the wrapped one
    assert endpoint._backlog == backlog


def test_listen_backlog_default_applied_to_every_listener(tmp_path):
    config = load(write(tmp_path, f"""
        [tcp]
        listen = ["tcp:0:interface=127.0.0.1", "unix:{tmp_path}/h.sock", "tcp:0:backlog=7"]
        [web]
        listen = ["tcp:0"]
        [metrics]
        listen = ["tcp:0:interface=127.0.0.1"]
    """), check_endpoint)
    assert config.server.listen_backlog == 1024
    assert config.metrics.listen == ["tcp:0:interface=127.0.0.1:backlog=1024"]
    assert config.tcp.listen == ["tcp:0:interface=127.0.0.1:backlog=1024",
                                 f"unix:{tmp_path}/h.sock:backlog=1024", "tcp:0:backlog=7"]
    assert config.web.listen == ["tcp:0:backlog=1024"]


def test_listen_backlog_setting(tmp_path):
    config = load(write(tmp_path, "[server]\nlisten_backlog = 4096\n"))
    assert config.tcp.listen == ["tcp:7007:interface=127.0.0.1:backlog=4096"]
    assert config.web.listen == ["tcp:7008:interface=127.0.0.1:backlog=4096"]


@pytest.mark.parametrize("value", ["0", "-1", "1.5", '"1024"', "true"])
def test_bad_listen_backlog(tmp_path, value):
    error = config_error(tmp_path, f"[server]\nlisten_backlog = {value}\n", "server.listen_backlog")
    assert error.problem.startswith("must be")


def test_bad_endpoint_named_as_written(tmp_path):
    """The endpoint check sees (and names) the string the sysadmin wrote."""
    error = config_error(tmp_path, '[tcp]\nlisten = ["tcp:notaport"]\n', "tcp.listen[0]",
                         check=check_endpoint)
    assert "'tcp:notaport'" in error.problem and "backlog" not in error.problem


# -- unix socket directories (issue 12 A7b) --------------------------------------

@pytest.mark.parametrize("text, key", [
    ('[tcp]\nlisten = ["unix:/nonexistent/dir/x.sock"]\n', "tcp.listen[0]"),
    ('[tcp]\nlisten = ["tcp:0", "haproxy:unix:/nonexistent/dir/x.sock"]\n', "tcp.listen[1]"),
    ('[web]\nlisten = ["unix:/nonexistent/dir/x.sock:mode=660"]\n', "web.listen[0]"),
])
def test_unix_socket_directory_missing(tmp_path, text, key):
    error = config_error(tmp_path, text, key, check=check_endpoint)
    assert "/nonexistent/dir" in error.problem
    assert "x.sock.lock" not in error.problem


def test_unix_socket_directory_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("")
    error = config_error(tmp_path, f'[tcp]\nlisten = ["unix:{tmp_path}/afile/x.sock"]\n',
                         "tcp.listen[0]")
    assert f"{tmp_path}/afile" in error.problem


def test_unix_socket_directory_not_writable(tmp_path):
    if os.geteuid() == 0:  # root may write anywhere: check as nobody, in a child
        return _unix_socket_directory_not_writable_as_nobody()
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    error = config_error(tmp_path, f'[tcp]\nlisten = ["unix:{locked}/x.sock"]\n',
                         "tcp.listen[0]")
    assert str(locked) in error.problem and "writable" in error.problem


def _unix_socket_directory_not_writable_as_nobody():
    import pwd
    import shutil
    import tempfile
    nobody = pwd.getpwnam("nobody")
    top = tempfile.mkdtemp(prefix="hpxd-unix-")  # /tmp: nobody may enter it
    try:
        os.chmod(top, 0o755)
        locked = os.path.join(top, "locked")
        os.mkdir(locked, 0o555)
        # Import as root (the interpreter may live in root's home), then drop
        # to nobody before the check, as twistd -u does.
        code = ("import os; from hpxd import config; "
                f"os.setgid({nobody.pw_gid}); os.setuid({nobody.pw_uid}); "
                f"config.from_dict({{'tcp': {{'listen': ['unix:{locked}/x.sock']}}}})")
        proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=REPO),
                              capture_output=True, text=True, timeout=60, cwd=top)
        assert proc.returncode != 0
        assert "ConfigError" in proc.stderr and "tcp.listen[0]" in proc.stderr
        assert locked in proc.stderr and "writable" in proc.stderr
    finally:
        shutil.rmtree(top)


def test_unix_socket_in_the_abstract_namespace(tmp_path):
    load(write(tmp_path, '[tcp]\nlisten = ["unix:\\u0000/nonexistent/x:lockfile=0"]\n'),
         check_endpoint)


def test_unix_socket_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load(write(tmp_path, '[tcp]\nlisten = ["unix:x.sock"]\n'), check_endpoint)
    config_error(tmp_path, '[tcp]\nlisten = ["unix:nodir/x.sock"]\n', "tcp.listen[0]")


# -- privileges for items the app does not have (issue 12 A7a) -------------------

def shop_task():
    from hpxd.app import Task
    task = Task("shop")
    task.item("catalog").item("parts")
    task.item("orders")
    return task


def roles_config(tmp_path, privileges):
    text = '[roles.guest]\nprivileges = { "*" = ["view"] }\n'
    for name, table in privileges.items():
        entries = ", ".join(f'"{item}" = ["view"]' for item in table)
        text += f"[roles.{name}]\nprivileges = {{ {entries} }}\n"
    return load(write(tmp_path, text))


def test_known_privilege_items_give_no_warning(tmp_path):
    config = roles_config(tmp_path, {"x": ["*", "shop", "catalog", "catalog.parts", "orders"]})
    assert configmod.unknown_privilege_items(config, shop_task()) == []


def test_default_config_and_demo_give_no_warning():
    from hpxd.demo import task
    assert configmod.unknown_privilege_items(load(), task) == []


def test_unknown_privilege_items_named(tmp_path):
    config = roles_config(tmp_path, {"x": ["*", "catalgo", "catalog"],
                                     "y": ["parts", "demo"]})
    lines = configmod.unknown_privilege_items(config, shop_task())
    assert len(lines) == 3
    catalgo, parts, demo = lines
    assert "roles.x" in catalgo and "'catalgo'" in catalgo and "'catalog'" in catalgo
    # "parts" is only reachable by its dotted path.
    assert "roles.y" in parts and "'parts'" in parts and "'catalog.parts'" in parts
    assert "roles.y" in demo and "'demo'" in demo
    assert all("\n" not in line for line in lines)


# -- the same through twistd: one line, non-zero exit ---------------------------

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
          "-n", "--pidfile=", "hpxd", "--config"]


def test_twistd_prints_one_line_per_config_error(tmp_path):
    cases = {
        "unknown_key.toml": ("[tcp]\nbogus = 1\n", "tcp.bogus"),
        "bad_endpoint.toml": ('[tcp]\nlisten = ["tcp:notaport"]\n', "tcp.listen[0]"),
        "no_app.toml": ('[tcp]\nlisten = []\n[web]\nlisten = []\n'
                        '[app]\nmodule = "no_such_hpxd_app_module"\n', "app.module"),
        "two_slashes.toml": ('[tcp]\nlisten = []\n[web]\nlisten = []\n'
                             '[database]\nurl = "sqlite://relative.db"\n', "database.url"),
        "no_socket_dir.toml": ('[tcp]\nlisten = ["unix:/nonexistent/dir/x.sock"]\n',
                               "tcp.listen[0]"),
    }
    # What the line must say, besides the file and the key.
    plainly = {"two_slashes.toml": "sqlite:///PATH", "no_socket_dir.toml": "'/nonexistent/dir'"}
    env = dict(os.environ, PYTHONPATH=REPO)
    procs = {}
    for name, (text, _) in cases.items():
        (tmp_path / name).write_text(text)
        # Started together: each twistd takes a fraction of a second to start.
        procs[name] = subprocess.Popen(TWISTD + [name], cwd=tmp_path, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for name, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # it started: the config was taken as good
            proc.kill()
            out, _ = proc.communicate()
        key = cases[name][1]
        lines = [line for line in out.decode(errors="replace").splitlines() if line.strip()]
        assert proc.returncode != 0, (name, out)
        assert len(lines) == 1, (name, out)
        assert name in lines[0] and key in lines[0], (name, lines)
        assert "Traceback" not in lines[0]
        assert proc.returncode == 2, (name, out)
        assert plainly.get(name, "") in lines[0], (name, lines)
    # A config error stops start-up before anything is made.
    assert not (tmp_path / "hpxd-data").exists()
