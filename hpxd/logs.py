"""Log observers for twistd's ``--logger`` option.

    twistd -n --pidfile= --logger=hpxd.logs.json_lines hpxd --config FILE

writes every log event as one JSON object per line on standard output, for
journald, ELK and the like (``twisted.logger.eventFromJSON`` reads them back).
"""

import sys

from twisted.logger import jsonFileLogObserver


def json_lines():
    """One JSON object per line on stdout (no record-separator character)."""
    return jsonFileLogObserver(sys.stdout, recordSeparator="")
