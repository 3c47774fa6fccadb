"""The doors: each adapts one wire format to the core (docs/<door>.md).

``DOORS`` is the one registry the service builds doors from: a config
section name -> the import path of a factory ``(node, section, reactor)``
returning an ``IDoor`` provider that is also a Twisted ``IService``. A door
is built when its section's ``listen`` list is not empty. The service
imports none of them by name, and no door imports another.
"""

from twisted.python.reflect import namedAny
from zope.interface.verify import verifyObject

from hpxd.core.interfaces import IDoor

DOORS = {
    "tcp": "hpxd.doors.tcp.TcpDoor",
    "web": "hpxd.doors.web.WebDoor",
}

# The web door's resources: top-level path segment -> the import path of a
# factory ``(node, web section, reactor)`` returning a twisted.web resource.
# A web resource (/ws, /api, /ajax, /forms, /metrics ...) joins here.
WEB_RESOURCES = {
    "healthz": "hpxd.doors.web.health.Healthz",
    "readyz": "hpxd.doors.web.health.Readyz",
    "ws": "hpxd.doors.web.websocket.WebSocket",
}


def build(node, config, reactor):
    """The doors that ``config`` switches on, in registry order."""
    doors = []
    for section_name, factory_path in DOORS.items():
        section = getattr(config, section_name)
        if not section.listen:
            continue
        door = namedAny(factory_path)(node, section, reactor)
        verifyObject(IDoor, door)
        doors.append(door)
    return doors
