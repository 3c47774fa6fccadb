"""Downloads of forms: QFQ's ``download`` modes, made from declared sources.

A form declares its downloads (``form.download(...)``, checked at once,
no I/O); the form door resolves the SIP, reads the record through the
dispatcher and calls ``produce(node, session, download, record, params)``,
which fires with a ``File`` (or, for ``output="json"``, QFQ's "copy to
clipboard" answer ``{"status", "message", "text"}``).

Sources are the file-store files of the record's file fields, files under
the roots the task declares (``task.download_root(name, path)``, named
``"root:relative/path"``), or one relative path the client sends under a
root (``client_path``). Nothing outside a root's real path is ever read:
``..``, absolute paths, NUL bytes, backslashes and symlinks leading out are
refused. Every read of a disk file and all zip, PDF, image and spreadsheet
work runs in a worker thread; what a download assembles in memory is capped
at MAX_BYTES. Converting HTML to PDF (QFQ's ``u:``/``U:`` sources) is not
supported: mode "html" is refused when declared. docs/forms.md is the guide.
"""

import io
import mimetypes
import os
import stat
import zipfile
from collections import OrderedDict

from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from hpxd.core import errors
from hpxd.core.auth import PRIVILEGES
from hpxd.core.deferreds import deferred
from hpxd.core.files import OCTET_STREAM, File, safe_name

log = Logger()

MODES = ("file", "zip", "thumbnail", "monitor", "pdf", "excel")
OUTPUTS = ("raw", "json")
SINGLE = ("file", "thumbnail", "monitor")  # modes that take exactly one source
MAX_BYTES = 64 * 1024 * 1024  # bytes a download may assemble in memory (sources and result)
MAX_SOURCES = 100             # sources of one zip or pdf
MAX_RELATIVE = 1024           # characters of a relative path
DEFAULT_WIDTH, MAX_WIDTH = 150, 2000  # pixels of a thumbnail
DEFAULT_TAIL, MAX_TAIL = 100, 10_000  # lines a monitor answers
TAIL_BLOCK = 64 * 1024        # bytes a monitor reads at a time, from the end
MAX_TAIL_BYTES = 8 * 1024 * 1024  # a monitor reads at most this much of a log's end
MAX_EXCEL_ROWS = 10_000
EXCEL_PAGE = 500              # records asked for at a time (the records layer caps pages)
MAX_IMAGE_PIXELS = 50_000_000  # an image larger is a decompression bomb to us
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")  # never EPS (Ghostscript)
THUMBNAIL_CACHE_ENTRIES = 256
THUMBNAIL_CACHE_BYTES = 16 * 1024 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
OUTSIDE = "the path is outside the download root"


# -- declaration -----------------------------------------------------------------------


class Download:
    """One declared download of ``form`` (``form.download(...)``); the
    arguments are those of ``Form.download``. ValueError says what is wrong."""

    def __init__(self, form, name, mode="file", *, field=None, fields=None, path=None,
                 paths=None, client_path=None, width=None, tail=None, output="raw",
                 filename=None, requires="view"):
        self.form, self.name, self.mode = form, name, mode
        self.where = where = f"form {form.name!r}, download {name!r}"
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"form {form.name!r}: download name {name!r} must be a "
                             "Python identifier")
        if mode == "html":
            raise ValueError(f"{where}: converting HTML to PDF is not supported")
        if mode not in MODES:
            raise ValueError(f"{where}: mode must be one of {list(MODES)}, not {mode!r}")
        if output not in OUTPUTS:
            raise ValueError(f"{where}: output must be one of {list(OUTPUTS)}, not {output!r}")
        if output == "json" and mode not in ("file", "monitor"):
            raise ValueError(f"{where}: json output is for a file or monitor download")
        if requires not in PRIVILEGES:
            raise ValueError(f"{where}: requires must be one of {list(PRIVILEGES)}")
        if filename is not None and (not isinstance(filename, str) or not filename.strip()):
            raise ValueError(f"{where}: filename must be a non-empty string")
        self.output, self.requires = output, requires
        self.filename = safe_name(filename) if filename is not None else None
        self.fields = self._fields(_listed(where, "field", field, fields))
        self.paths = self._paths(_listed(where, "path", path, paths))
        self.client_path = self._client_root(client_path)
        self._check_sources()
        self.width = _bounded(where, "width", width, DEFAULT_WIDTH, MAX_WIDTH, "thumbnail", mode)
        self.tail = _bounded(where, "tail", tail, DEFAULT_TAIL, MAX_TAIL, "monitor", mode)

    @property
    def roots(self):
        return self.form.item.task.download_roots

    def _fields(self, names):
        for name in names:
            found = self.form.fields.get(name) if isinstance(name, str) else None
            if found is None or found.kind != "file":
                raise ValueError(f"{self.where}: {name!r} is not a file field of the form")
        return names

    def _paths(self, written):
        paths = []
        for text in written:
            root, colon, relative = text.partition(":") if isinstance(text, str) else ("", "", "")
            if not colon or not relative:
                raise ValueError(f"{self.where}: path {text!r} must be written "
                                 "'<root>:<relative path>'")
            self._root(root)
            problem = _relative_problem(relative)
            if problem:
                raise ValueError(f"{self.where}: path {text!r}: {problem}")
            paths.append((root, relative))
        return paths

    def _client_root(self, root):
        if root is not None:
            self._root(root)
        return root

    def _root(self, root):
        if root not in self.roots:
            raise ValueError(f"{self.where}: {root!r} is not a download root of the task "
                             "(task.download_root(name, path), declared before the form)")

    def _check_sources(self):
        count = len(self.fields) + len(self.paths) + (self.client_path is not None)
        if self.mode == "excel":
            if count:
                raise ValueError(f"{self.where}: an excel download exports the form's "
                                 "records and takes no sources")
            return
        if count == 0:
            raise ValueError(f"{self.where}: needs a source (field, fields, path, paths "
                             "or client_path)")
        if self.mode in SINGLE and count != 1:
            raise ValueError(f"{self.where}: a {self.mode} download takes one source, "
                             f"not {count}")
        if count > MAX_SOURCES:
            raise ValueError(f"{self.where}: at most {MAX_SOURCES} sources")
        if self.mode == "monitor" and self.fields:
            raise ValueError(f"{self.where}: a monitor reads a log file under a download "
                             "root (path or client_path), not a file field")

    def describe(self):
        return {"name": self.name, "mode": self.mode, "output": self.output,
                "requires": self.requires}

    def __repr__(self):
        return f"<Download {self.name!r} ({self.mode}) of form {self.form.name!r}>"


def _listed(where, what, one, many):
    if one is not None and many is not None:
        raise ValueError(f"{where}: give {what} or {what}s, not both")
    if many is None:
        return [] if one is None else [one]
    if not isinstance(many, (list, tuple)) or not many:
        raise ValueError(f"{where}: {what}s must be a non-empty list")
    return list(many)


def _bounded(where, what, value, default, most, mode, actual):
    if value is None:
        return default
    if actual != mode:
        raise ValueError(f"{where}: {what} is for a {mode} download, not a {actual}")
    if type(value) is not int or not 1 <= value <= most:
        raise ValueError(f"{where}: {what} must be a whole number from 1 to {most}")
    return value


def _relative_problem(relative):
    """Why ``relative`` may not name a file under a root, or None (the
    real path is checked again when the file is read)."""
    if not isinstance(relative, str) or not relative:
        return "needs a relative path"
    if len(relative) > MAX_RELATIVE:
        return f"is longer than {MAX_RELATIVE} characters"
    if "\x00" in relative or "\\" in relative:
        return "must not contain NUL characters or backslashes"
    if relative.startswith("/") or os.path.isabs(relative):
        return "must be relative to the root"
    if ".." in relative.split("/"):
        return "must not contain '..'"
    return None


# -- producing ---------------------------------------------------------------------------


@deferred
async def produce(node, session, download, record, params):
    """Make ``download`` for ``session``: a ``File``, or for json output
    ``{"status": "success", "message": "", "text": ...}``. ``record``: the
    record the SIP names (None for a new one); ``params``: the request's
    other parameters (``path`` only, for a ``client_path`` download)."""
    form = download.form
    if not node.auth.can(session.user_info, form.item.privilege_key, download.requires):
        raise errors.PermissionDenied(f"your role {session.role!r} lacks "
                                      f"{download.requires!r} on {form.item.privilege_key!r}")
    places = _places(download, _client_relative(download, params))
    if download.mode == "excel":
        return await _excel(node, session, download)
    if download.mode == "monitor":
        root, relative = places[0]
        data = await deferToThread(_tail, root, relative, download.tail)
        return _answer(download, safe_name(os.path.basename(relative)), "text/plain", data)
    if download.mode == "thumbnail":
        return await _thumbnail(node, session, download, record, places)
    budget = _Budget()
    sources = [await _field_source(node, session, record, name, budget)
               for name in download.fields]
    for root, relative in places:
        sources.append(await _path_source(root, relative, budget))
    return await MAKERS[download.mode](download, sources)


def _places(download, client):
    """``(root directory, relative path)`` of each disk source: the app's
    paths, then the client's."""
    places = [(download.roots[root], relative) for root, relative in download.paths]
    if download.client_path is not None:
        places.append((download.roots[download.client_path], client))
    return places


def _client_relative(download, params):
    """The path the client sent for a ``client_path`` download (None when
    the download takes none)."""
    params = params or {}
    if not isinstance(params, dict):
        raise errors.BadArguments("the download's parameters must be an object")
    relative = params.get("path")
    if download.client_path is None:
        if relative is not None:
            raise errors.BadArguments(f"download {download.name!r} takes no path")
        return None
    if not isinstance(relative, str) or not relative:
        raise errors.BadArguments(f"download {download.name!r} needs a path")
    if _relative_problem(relative):
        raise errors.PermissionDenied(OUTSIDE)
    return relative


def _answer(download, name, content_type, data):
    if download.output == "json":
        return {"status": "success", "message": "", "text": _text(data, name)}
    return File(download.filename or name, content_type, bytes(data))


def _text(data, name):
    if b"\x00" in data:
        raise errors.BadArguments(f"{name} is not text (it holds NUL bytes)")
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise errors.BadArguments(f"{name} is not UTF-8 text") from None


class _Budget:
    """The bytes one download has assembled so far, refused past MAX_BYTES."""

    def __init__(self):
        self.left = MAX_BYTES

    def check(self, count):
        if count > self.left:
            raise too_large()

    def take(self, count):
        self.check(count)
        self.left -= count


def too_large():
    return errors.BadArguments(f"the download is too large (more than {MAX_BYTES} bytes)")


class _Source:
    """One source read: ``name``, ``content_type``, ``data``; ``key``
    identifies its content for the thumbnail cache."""

    def __init__(self, name, content_type, data, key):
        self.name, self.content_type, self.data, self.key = name, content_type, data, key


async def _field_source(node, session, record, field, budget):
    reader = await _open_field(node, session, record, field)
    try:
        return await _read_all(reader, budget)
    finally:
        await reader.close()


async def _open_field(node, session, record, field):
    """A Reader of the file in ``record[field]``; the file store checks
    view on the file's own item."""
    file_id = (record or {}).get(field)
    if not isinstance(file_id, str) or not file_id:
        raise errors.FunctionNotFound(f"no file in {field}")
    return await node.files.download(session, file_id)


async def _read_all(reader, budget):
    budget.check(reader.size)  # refused before a byte is read
    chunks = []
    while (chunk := await reader.read()) is not None:
        budget.take(len(chunk))
        chunks.append(chunk)
    return _Source(reader.name, reader.content_type, b"".join(chunks),
                   ("file", reader.stored.id))


async def _path_source(root, relative, budget):
    real, size, mtime, data = await deferToThread(_read_file, root, relative, budget.left)
    budget.take(len(data))
    name = safe_name(os.path.basename(relative))  # the name given, not a symlink's target
    content_type = mimetypes.guess_type(name)[0] or OCTET_STREAM
    return _Source(name, content_type, data, ("path", real, size, mtime))


# -- disk (worker threads) -----------------------------------------------------------------


def _open_inside(root, relative):
    """An open binary file object of ``relative`` under ``root``, a regular
    file whose real path is inside the root's: PermissionDenied otherwise,
    FunctionNotFound when there is no such file."""
    if _relative_problem(relative):
        raise errors.PermissionDenied(OUTSIDE)
    base = os.path.realpath(root)
    real = os.path.realpath(os.path.join(base, relative))
    if os.path.commonpath([base, real]) != base or real == base:
        raise errors.PermissionDenied(OUTSIDE)
    try:
        # O_NOFOLLOW: a symlink put in place after realpath is not followed;
        # O_NONBLOCK: a FIFO does not hang the thread (it is refused below)
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise errors.FunctionNotFound(f"no file {relative!r}") from None
    except OSError as e:
        raise errors.PermissionDenied(f"cannot read {relative!r} ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise errors.FunctionNotFound(f"{relative!r} is not a file")
    return real, open(fd, "rb")


def _read_file(root, relative, limit):
    real, f = _open_inside(root, relative)
    with f:
        info = os.fstat(f.fileno())
        if info.st_size > limit:
            raise too_large()
        data = f.read(limit + 1)  # the file may have grown since fstat
    if len(data) > limit:
        raise too_large()
    return real, info.st_size, info.st_mtime_ns, data


def _identity(root, relative):
    """What a disk file's thumbnail is cached by: its real path, size and
    modification time (a changed file is rendered again)."""
    real, f = _open_inside(root, relative)
    with f:
        info = os.fstat(f.fileno())
    return ("path", real, info.st_size, info.st_mtime_ns)


def _tail(root, relative, lines):
    """The last ``lines`` lines of a log file, read from its end, a block
    at a time: never the whole file (at most MAX_TAIL_BYTES; a line longer
    than that arrives cut)."""
    _, f = _open_inside(root, relative)
    with f:
        position = f.seek(0, os.SEEK_END)
        blocks, newlines, total = [], 0, 0
        while position > 0 and newlines <= lines and total < MAX_TAIL_BYTES:
            step = min(TAIL_BLOCK, position, MAX_TAIL_BYTES - total)
            position -= step
            f.seek(position)
            block = f.read(step)
            blocks.append(block)
            newlines += block.count(b"\n")
            total += len(block)
    data = b"".join(reversed(blocks))
    end = b"\n" if data.endswith(b"\n") else b""  # lines end at "\n" only (a "\r" is kept)
    body = data[:-1] if end else data
    return b"\n".join(body.split(b"\n")[-lines:]) + end if data else b""


# -- modes ---------------------------------------------------------------------------------


async def _file(download, sources):
    source = sources[0]
    return _answer(download, source.name, source.content_type, source.data)


async def _zip(download, sources):
    data = await deferToThread(_zip_bytes, sources)
    return File(download.filename or safe_name(f"{download.form.name}-{download.name}.zip"),
                "application/zip", data)


def _zip_bytes(sources):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source in zip(member_names([s.name for s in sources]), sources):
            archive.writestr(name, source.data)
    return out.getvalue()


def member_names(names):
    """Zip member names: each a plain base name (safe_name), the repeated
    ones numbered ``a (2).txt`` so no member hides another."""
    taken, out = set(), []
    for name in names:
        name = safe_name(name)
        stem, ext = os.path.splitext(name)
        candidate, number = name, 1
        while candidate.lower() in taken:
            number += 1
            candidate = f"{stem} ({number}){ext}"
        taken.add(candidate.lower())
        out.append(candidate)
    return out


async def _pdf(download, sources):
    data = await deferToThread(_pdf_bytes, sources)
    return File(download.filename or safe_name(f"{download.form.name}-{download.name}.pdf"),
                "application/pdf", data)


def _pdf_bytes(sources):
    from pypdf import PdfReader, PdfWriter
    from pypdf.errors import PyPdfError
    writer = PdfWriter()
    for source in sources:
        try:
            reader = PdfReader(io.BytesIO(source.data))
            if reader.is_encrypted:
                raise errors.BadArguments(f"{source.name} is an encrypted PDF")
            writer.append(reader)
        # a malformed file fails inside pypdf with its own errors or plain ones
        except (PyPdfError, ValueError, KeyError, IndexError, TypeError):
            raise errors.BadArguments(f"{source.name} is not a PDF that can be read") from None
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


class ThumbnailCache:
    """Rendered thumbnails, least recently used dropped first, bounded by
    count and bytes. Used from the reactor thread only."""

    def __init__(self, entries=THUMBNAIL_CACHE_ENTRIES, size=THUMBNAIL_CACHE_BYTES):
        self.entries, self.size = entries, size
        self._items, self._bytes = OrderedDict(), 0

    def get(self, key):
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
        return data

    def put(self, key, data):
        if len(data) > self.size or key in self._items:
            return
        self._items[key] = data
        self._bytes += len(data)
        while len(self._items) > self.entries or self._bytes > self.size:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= len(dropped)

    def __len__(self):
        return len(self._items)


THUMBNAILS = ThumbnailCache()


async def _thumbnail(node, session, download, record, places):
    """Streamed from the cache when the source is unchanged (its identity
    known before it is read), else rendered and kept."""
    if download.fields:
        reader = await _open_field(node, session, record, download.fields[0])
        try:
            key, name = ("file", reader.stored.id), reader.name
            data = THUMBNAILS.get((key, download.width))
            if data is None:
                data = await _rendered(await _read_all(reader, _Budget()), download.width)
        finally:
            await reader.close()
    else:
        root, relative = places[0]
        key = await deferToThread(_identity, root, relative)
        name = safe_name(os.path.basename(relative))
        data = THUMBNAILS.get((key, download.width))
        if data is None:
            data = await _rendered(await _path_source(root, relative, _Budget()), download.width)
    stem = os.path.splitext(name)[0] or "thumbnail"
    return File(download.filename or safe_name(f"{stem}-thumbnail.png"), "image/png", data)


async def _rendered(source, width):
    data = await deferToThread(_thumbnail_bytes, source, width)
    THUMBNAILS.put((source.key, width), data)
    return data


def _thumbnail_bytes(source, width):
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(source.data), formats=IMAGE_FORMATS) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:  # known before decoding
                raise errors.BadArguments(f"{source.name} is too large an image")
            image.thumbnail((width, width * 8))
            if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
                image = image.convert("RGBA")
            out = io.BytesIO()
            image.save(out, "PNG")
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise errors.BadArguments(f"{source.name} is not an image that can be shown") from None
    except (OSError, ValueError, SyntaxError):  # a truncated or corrupt image
        raise errors.BadArguments(f"{source.name} is a damaged image") from None
    return out.getvalue()


async def _excel(node, session, download):
    form = download.form
    rows = []
    while len(rows) < MAX_EXCEL_ROWS:
        page = await node.dispatcher.records(
            session, form.item, "open",
            {"order_by": ["id"], "limit": min(EXCEL_PAGE, MAX_EXCEL_ROWS - len(rows)),
             "offset": len(rows), "fields": list(form.fields)},
            {"door": "forms"})
        if not page:
            break
        rows.extend(page)
    data = await deferToThread(_xlsx_bytes, form, rows)
    return File(download.filename or safe_name(f"{form.name}-{download.name}.xlsx"), XLSX, data)


def _xlsx_bytes(form, rows):
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    book = Workbook(write_only=True)
    sheet = book.create_sheet(form.name[:31])  # Excel's limit for a sheet name
    sheet.append([field.label for field in form.fields.values()])
    for record in rows:
        sheet.append([_cell(sheet, record.get(name), ILLEGAL_CHARACTERS_RE)
                      for name in form.fields])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _cell(sheet, value, illegal):
    """A record's value as a cell: text stays text, even when it begins
    with "=" (no formula from a user's input), without the control
    characters the xlsx format cannot hold."""
    from openpyxl.cell import WriteOnlyCell
    if not isinstance(value, str):
        return value
    cell = WriteOnlyCell(sheet, illegal.sub("", value))
    cell.data_type = "s"
    return cell


MAKERS = {"file": _file, "zip": _zip, "pdf": _pdf}  # modes made of read sources
