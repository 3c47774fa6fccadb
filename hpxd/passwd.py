"""Print a password hash for ``[[users]] password_hash``.

    python -m hpxd.passwd                 # on a terminal: asks twice, not echoed
    python -m hpxd.passwd < file          # otherwise: the first line of stdin

The hash alone goes to stdout, messages to stderr. The password is never taken
from the command line (it would show in ``ps`` and the shell history).
"""

import argparse
import getpass
import sys

from hpxd.core.passwords import hash_password

PROG = "python -m hpxd.passwd"

DESCRIPTION = """\
Print an scrypt hash of a password for a [[users]] password_hash in the config.

On a terminal it asks for the password twice (not echoed). Otherwise it reads
one line from stdin: the password, without its trailing newline. The hash
alone is printed on stdout, messages go to stderr. It takes no arguments: a
password on the command line would show in ps and the shell history."""

EPILOG = """\
examples:
  python -m hpxd.passwd
  python -m hpxd.passwd < password.txt > hash.txt

exit status: 0 hash printed, 1 empty password or the two differ, 2 arguments"""


class _Refusal(Exception):
    """A refused password; the message is for stderr."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's own message quotes the offending arguments; one of them may
        # be a password typed in the wrong place, so it is not repeated.
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: takes no arguments; type the password "
                     "at the prompt or give it on stdin\n")


def _parser():
    # A -h of our own: argparse's exits as soon as it is seen, so
    # "--help s3cret" would pass; here every argument is checked first.
    parser = _Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG, add_help=False,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-h", "--help", action="store_true",
                        help="show this help message and exit")
    return parser


def _from_tty():
    password = getpass.getpass("Password: ")
    if not password:
        raise _Refusal("empty password refused")
    if getpass.getpass("Password (again): ") != password:
        raise _Refusal("the passwords do not match; nothing printed")
    return password


def _from_stdin(stdin):
    line = stdin.readline()
    if line.endswith("\n"):
        line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
    if not line:
        raise _Refusal("empty password refused (one line on stdin is the password)")
    return line


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a refused argument
        return e.code
    if args.help:
        parser.print_help()
        return 0
    try:
        password = _from_tty() if sys.stdin.isatty() else _from_stdin(sys.stdin)
    except _Refusal as e:
        print(f"hpxd.passwd: {e}", file=sys.stderr)
        return 1
    except EOFError:
        print("\nhpxd.passwd: no password given", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
