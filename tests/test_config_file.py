"""config/hpxd.toml documents the built-in defaults: the two must not drift."""

import re
import tomllib
from pathlib import Path

import pytest

from hpxd import config as configmod

REPO = Path(__file__).resolve().parent.parent
CONFIG_FILE = REPO / "config" / "hpxd.toml"


@pytest.fixture(scope="module")
def documented():
    return configmod.load(str(CONFIG_FILE))


@pytest.fixture(scope="module")
def builtin():
    return configmod.load(None)


@pytest.mark.parametrize("section", sorted(configmod.SCHEMA))
def test_section_matches_builtin_defaults(documented, builtin, section):
    assert vars(getattr(documented, section)) == vars(getattr(builtin, section))


def test_roles_match_builtin_defaults(documented, builtin):
    assert documented.roles == builtin.roles
    assert set(documented.roles) == set(configmod.DEFAULT_ROLES)


def test_no_active_users(documented, builtin):
    assert documented.users == builtin.users == {}


def test_database_url_matches(documented, builtin):
    assert documented.database_url == builtin.database_url


def test_every_key_is_spelled_out():
    """Each key is written in the file, not left to its default."""
    raw = tomllib.loads(CONFIG_FILE.read_text())
    assert "users" not in raw, "the documented config must not define an active user"
    for section, keys in configmod.SCHEMA.items():
        assert section in raw, f"[{section}] is missing"
        assert set(raw[section]) == set(keys), f"[{section}] keys differ from SCHEMA"
    for role in configmod.DEFAULT_ROLES:
        assert role in raw.get("roles", {}), f"[roles.{role}] is missing"


def test_every_schema_key_appears_in_the_text():
    text = CONFIG_FILE.read_text()
    for section, keys in configmod.SCHEMA.items():
        assert re.search(rf"^\[{section}\]\s*$", text, re.M), f"[{section}] header missing"
        for key in keys:
            assert re.search(rf"^{key} = ", text, re.M), f"{section}.{key} missing from the text"


def test_every_key_has_a_comment():
    """Every key of a SCHEMA section has a comment line right above it."""
    lines = CONFIG_FILE.read_text().splitlines()
    section = None
    for i, line in enumerate(lines):
        header = re.match(r"^\[([a-z_.]+)\]\s*$", line)
        if header:
            section = header.group(1)
        elif section in configmod.SCHEMA and re.match(r"^[a-z_]+ = ", line):
            assert lines[i - 1].startswith("#"), f"line {i + 1} ({line!r}) has no comment above it"
