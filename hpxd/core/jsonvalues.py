"""Values the core stores (session data, scope, hub messages) are JSON."""

import json

from hpxd.core import errors


def dump_json(value, what):
    """``value`` as JSON text; BadArguments naming ``what`` if it is not JSON."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as e:
        raise errors.BadArguments(f"{what} must be JSON-serialisable ({e})") from None
