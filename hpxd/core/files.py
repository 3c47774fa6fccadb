"""Files: what reports return and what uploads store.

``File(name, content_type, data)`` is a whole file in memory, as a report
function returns it (``hpxd.app.File``). The file store that every node
shares (uploads, report results) implements ``IFileStore``
(hpxd.core.interfaces).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class File:
    name: str           # the name the client sees (metadata only, never a path)
    content_type: str   # e.g. "application/pdf"
    data: bytes

    def __post_init__(self):
        if not isinstance(self.name, str) or not isinstance(self.content_type, str):
            raise TypeError("File: name and content_type must be strings")
        if not isinstance(self.data, (bytes, bytearray)):
            raise TypeError("File: data must be bytes")
