"""The import graph has no circle at its top (issue 18 C): tap -> service ->
doors, backends, core -> config; nothing imports back up, not even inside
a function."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import imported_modules

HPXD = Path(__file__).resolve().parent.parent / "hpxd"
REPO = HPXD.parent


def imports_any(path, prefixes):
    return sorted(m for m in imported_modules(path)
                  if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("module, above", [
    ("config.py", ["hpxd.doors", "hpxd.backends", "hpxd.service", "hpxd.tap"]),
    ("service.py", ["hpxd.tap"]),
    ("core/app.py", ["hpxd.doors", "hpxd.backends", "hpxd.service", "hpxd.tap", "hpxd.config"]),
])
def test_no_module_imports_one_above_it(module, above):
    assert imports_any(HPXD / module, above) == []


def modules_loaded_by(code):
    """The hpxd modules a fresh interpreter has loaded after ``code``."""
    probe = code + "\nimport sys; print(' '.join(m for m in sys.modules if m.startswith('hpxd')))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_checking_a_config_loads_no_door():
    # The echo_path check among the rest: it needs the web door's paths,
    # which the caller hands in.
    loaded = modules_loaded_by(
        "from hpxd import config\n"
        "config.from_dict({'web': {'echo_path': '/echo'}}, web_paths={'ws'})\n"
        "config.from_dict({'tcp': {'listen': ['tcp:0']}}, check_endpoint=config.check_endpoint)")
    assert not [m for m in loaded if m.startswith(("hpxd.doors", "hpxd.backends",
                                                   "hpxd.service", "hpxd.tap"))], loaded


def test_the_service_reloads_without_the_twistd_plugin(tmp_path):
    (tmp_path / "hpxd.toml").write_text("[tcp]\nlisten = []\n[web]\nlisten = []\n")
    loaded = modules_loaded_by(
        "from hpxd import service\n"
        f"service.read_config({str(tmp_path / 'hpxd.toml')!r})")
    assert "hpxd.service" in loaded and "hpxd.tap" not in loaded
