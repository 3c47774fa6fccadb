"""Form bodies (multipart/form-data) as the web resources read them.

twisted.web would parse a multipart/form-data body whole, in memory, into
``request.args``, and answer one it cannot parse with a bare 400 of its
own before any resource runs. The web door's Request keeps it from doing
either (``form_body``, hpxd/doors/web/__init__.py); the resources parse the
body here instead, with PyPI ``multipart``'s push parser, a piece at a
time, and answer what is malformed with the error table's JSON:

- ``form_fields(request)``: every field of a form body, for a body within
  ``[web] max_body_bytes`` (``/ajax``, ``/session``);
- ``MultipartForm``: an upload's body (up to ``[web] max_upload_bytes``),
  its fields and then its file's bytes (``/upload``).
"""

import multipart

from hpxd.core import errors

READ_SIZE = 64 * 1024  # bytes of the body read (and parsed) at a time
MAX_FIELD = 4096  # bytes of an upload's form field other than its file
MAX_SEGMENTS = 32  # parts of one multipart body
MULTIPART = "multipart/form-data"


def boundary_of(request, wrong_type):
    """The boundary of a multipart/form-data ``request``; BadArguments
    saying ``wrong_type`` for another type, ParsingError for no boundary."""
    header = (request.getHeader(b"content-type") or b"").decode("latin-1")
    kind, options = multipart.parse_options_header(header)
    if kind.lower() != MULTIPART:
        raise errors.BadArguments(f"{wrong_type}, not {kind[:60] or 'an untyped body'!r}")
    if not options.get("boundary"):
        raise errors.ParsingError("the multipart/form-data Content-Type has no boundary")
    return options["boundary"]


def form_fields(request):
    """``[(name, value)]`` (bytes) of a multipart/form-data body that the
    web door kept from twisted.web; a file part's value is its bytes."""
    form = MultipartForm(request.form_body, boundary_of(request, MULTIPART))
    fields, name, value = [], None, bytearray()
    for event in form.events:
        if isinstance(event, multipart.MultipartSegment):
            name, value = event.name, bytearray()
        elif event is None:
            if not name:
                raise errors.ParsingError("a part of the multipart/form-data body has no name")
            fields.append((name.encode("utf-8"), bytes(value)))
        else:
            value += event
    return fields


class MultipartForm:
    """A multipart/form-data body (a file) parsed a piece at a time.

    ``fields_and_file(file_field)`` (in a thread) reads up to the part named
    ``file_field`` and returns ``(fields, part)``: the text fields before it
    and its headers. ``file_data()`` then yields the file's bytes; once they end it
    reads the rest of the body, which must be well formed too (nothing of
    it is used). Malformed input raises ParsingError (410); no such part
    raises BadArguments (413)."""

    def __init__(self, body, boundary):
        self.body = body
        try:
            self.parser = multipart.PushMultipartParser(boundary,
                                                        max_segment_count=MAX_SEGMENTS)
        except (multipart.MultipartError, ValueError) as e:
            raise errors.ParsingError(f"bad multipart boundary ({e})") from None
        self.events = self._events()

    def _events(self):
        self.body.seek(0)
        while True:
            chunk = self.body.read(READ_SIZE)
            try:
                yield from self.parser.parse(chunk)  # b"": the end of the body
            except multipart.MultipartError as e:
                raise errors.ParsingError(f"the multipart/form-data body is malformed "
                                          f"({str(e)[:200]})") from None
            if not chunk or self.parser.closed:
                return

    def fields_and_file(self, file_field):
        fields, name, value = {}, None, bytearray()
        for event in self.events:
            if isinstance(event, multipart.MultipartSegment):
                if event.name == file_field:
                    return fields, event
                name, value = event.name, bytearray()
            elif event is None:
                fields[name] = value.decode("utf-8", "replace")
            else:
                value += event
                if len(value) > MAX_FIELD:
                    raise errors.BadArguments(f"the form field {name[:60]!r} is longer than "
                                              f"{MAX_FIELD} bytes")
        raise errors.BadArguments(f"the upload has no field named {file_field!r} "
                                  f"(multipart/form-data, the file in the field {file_field!r})")

    def file_data(self):
        for event in self.events:
            if event is None:
                break
            yield event
        for _ in self.events:  # the rest must parse, and end, too
            pass

