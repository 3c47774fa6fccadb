"""hpxd: one Twisted daemon, several doors, one application."""

__version__ = "0.1.0"
VERSION = (0, 1, 0)
