"""twistd plugin body: ``twistd -n hpxd [--config FILE]``."""

import os
import sys

from twisted.python import usage

from hpxd import config as configmod


def check_endpoint(description):
    from twisted.internet import endpoints, reactor
    endpoints.serverFromString(reactor, description)


class Options(usage.Options):
    synopsis = "[--config FILE]"
    longdesc = ("Run hpxd. Without --config it runs on the built-in defaults, "
                "the same as config/hpxd.toml.")
    optParameters = [["config", "c", None, "Path of the TOML configuration file."]]

    def postOptions(self):
        # A sysadmin's mistake gets one line and a non-zero exit, no traceback
        # and no usage screen (which is what twistd does with a UsageError).
        from hpxd.service import load_task
        try:
            self.config = configmod.load(self["config"], check_endpoint)
            self.config.resolve_paths()
            self.task = _load(self.config, load_task)
            os.makedirs(self.config.server.data_dir, exist_ok=True)
        except configmod.ConfigError as e:
            _fail(f"hpxd: config error: {e}")
        except OSError as e:
            _fail(f"hpxd: config error: {self.config.path}: server.data_dir: {e}")


def _load(config, load_task):
    try:
        return load_task(config.app.module)
    except ValueError as e:
        raise configmod.ConfigError(config.path, "app.module", str(e)) from None


def _fail(line):
    print(line, file=sys.stderr)
    sys.exit(2)


def makeService(options):
    from hpxd.service import HpxdService
    return HpxdService(options.config, options.task)
