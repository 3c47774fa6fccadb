"""twistd plugin body: ``twistd -n hpxd [--config FILE] [--check | --print-config]``.

The top of hpxd's import graph: it imports the service (which imports the
doors, the backends, the core and the config), and nothing imports it.
"""

import os
import platform
import pwd
import sys
from importlib import resources

from twisted.python import usage

import hpxd
from hpxd import config as configmod


def default_config_text():
    """The documented default configuration (config/hpxd.toml, shipped in the package)."""
    return resources.files("hpxd").joinpath("hpxd.toml").read_text(encoding="utf-8")


class Options(usage.Options):
    synopsis = "[--config FILE] [--check | --print-config | --version]"
    longdesc = ("Run hpxd. Without --config it runs on the built-in defaults, which "
                "--print-config prints (every key, commented).")
    optParameters = [["config", "c", None, "Path of the TOML configuration file."]]
    optFlags = [
        ["check", None, "Validate the configuration and import the app, then exit: "
                        "0 when good, 2 with one line naming the problem."],
        ["print-config", None, "Print the default configuration and exit."],
    ]

    def opt_version(self):
        """Print hpxd's version (and Twisted's and Python's) and exit."""
        from twisted import copyright
        print(f"hpxd {hpxd.__version__} (Twisted {copyright.version}, "
              f"Python {platform.python_version()})")
        sys.exit(0)

    def postOptions(self):
        # A sysadmin's mistake gets one line and a non-zero exit, no traceback
        # and no usage screen (which is what twistd does with a UsageError).
        if self["print-config"]:
            sys.stdout.write(default_config_text())
            sys.exit(0)
        from hpxd.core.app import load_task
        from hpxd.service import read_config
        if self["config"]:
            # twistd --rundir changes directory later; a reload reads it again.
            self["config"] = os.path.abspath(self["config"])
        try:
            self.config = read_config(self["config"])
            self.task = _load(self.config, load_task)
        except configmod.ConfigError as e:
            _fail(f"hpxd: config error: {e}")
        if self["check"]:
            _report_check(self.config, self.task)
        # Nothing is made here: [server] data_dir is made by the service once
        # its listeners are open, before twistd drops privileges.


def _target_user(parent):
    """The uid and gid twistd switches to after listening, or (None, None)."""
    if parent is None:
        return None, None
    uid, gid = parent.get("uid"), parent.get("gid")
    if uid is not None and gid is None:
        gid = pwd.getpwuid(uid).pw_gid  # what twistd itself does
    return uid, gid


def _load(config, load_task):
    try:
        return load_task(config.app.module)
    except ValueError as e:
        raise configmod.ConfigError(config.path, "app.module", str(e)) from None


def _report_check(config, task):
    """``--check``: warnings on stderr, one summary line, exit 0 (errors exit 2 before)."""
    for line in configmod.unknown_privilege_items(config, task):
        print(f"hpxd: warning: {line}", file=sys.stderr)
    listeners = [f"{door} {description}" for door in configmod.LISTENERS
                 for description in getattr(config, door).listen]
    print(f"hpxd: {config.path}: configuration OK (app {config.app.module!r}, "
          f"backend {config.backend.kind}, listeners: {', '.join(listeners) or 'none'})")
    sys.exit(0)


def _fail(line):
    print(line, file=sys.stderr)
    sys.exit(2)


def makeService(options):
    from hpxd.service import HpxdService
    return HpxdService(options.config, options.task, config_path=options["config"],
                       reload_on_sighup=True, data_dir_owner=_target_user(options.parent))
