"""Print a password hash for ``[[users]] password_hash``.

    python -m hpxd.passwd PASSWORD        # or the password on stdin
"""

import getpass
import sys

from hpxd.core.passwords import hash_password


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        password = argv[0]
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("hpxd.passwd: empty password refused", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
