"""The form door's work, door-free (``node.forms``): QFQ's endpoints as calls.

The web door (hpxd.doors.web.forms_door) turns HTTP into these calls and
their answers into JSON or HTML; everything a form does happens here,
through the core's seams only: records through the dispatcher (privileges,
metrics, drain), files through ``node.files``, locks through
``node.record_locks``, SIPs through ``node.sips``, saved table views in the
scope. Every call takes the request's session; every answer is a dict, the
QFQ Minimal Response (``status``, ``message``) plus what the endpoint adds.

A page gets SIPs when it is rendered (``open_form`` / ``open_view``); each
SIP names what it may be used for in its parameters (``use``):

    form        load, save, delete, dirty, file (the form and its record)
    typeahead   typeahead (one field's suggestions)
    download    download (one declared download of the record)
    table       dragAndDrop and the table's "save view" (one table view)

so a SIP of one kind is refused where another is expected. Errors are the
one error table's (hpxd.core.errors); a door answers them as an error
Minimal Response. docs/forms.md is the guide.
"""

from twisted.logger import Logger

from hpxd.core import errors
from hpxd.core.deferreds import deferred
from hpxd.core.records import record_hash
from hpxd.core.record_locks import CONFLICT, CONFLICT_ALLOW_FORCE, NONE, SUCCESS

DOOR = "forms"
LOCK_ACTIONS = ("lock", "extend", "release", "force")
SUBMIT_REASONS = ("save", "save,close")
TYPEAHEAD_LIMIT = 20
MAX_QUERY = 100  # characters of a typeahead query
MAX_VIEWS = 50  # saved views per table and owner
VIEW_KEY = "forms.views."  # + table view name: the scope key of its saved views

log = Logger()


def minimal(message="", status=SUCCESS, **more):
    """QFQ's Minimal Response, plus ``more`` (keys as the seed spells them)."""
    return {"status": status, "message": message, **more}


def record_id_of(text):
    """A record id as a request names it (``r``, ``dragId``): a whole number."""
    if type(text) is int and not isinstance(text, bool):
        value = text
    elif isinstance(text, str) and text.strip().isdigit() and len(text.strip()) < 19:
        value = int(text.strip())
    else:
        raise errors.BadArguments(f"a record id must be a whole number, not {str(text)[:40]!r}")
    if value < 1:
        raise errors.BadArguments("a record id must be 1 or more")
    return value


def alert(message, kind="info", timeout=0, modal=False, buttons=()):
    """QFQ's Alert: ``timeout`` in ms (0: until dismissed), ``buttons`` as
    ``(label, eventName, focus)``."""
    return {"message": message, "type": kind, "timeout": timeout, "modal": modal,
            "buttons": [{"label": label, "eventName": event, "focus": focus}
                        for label, event, focus in buttons]}


def conflict_alert(answer):
    """The dialog a lock conflict shows: modal with a reload button when
    nothing can be forced, else one offering to take the lock over."""
    if answer.status == CONFLICT:
        return {"alert": alert(answer.message, "warning", modal=True,
                               buttons=[("Reload", "reload", True)])}
    if answer.status == CONFLICT_ALLOW_FORCE:
        return {"alert": alert(answer.message, "warning",
                               buttons=[("Take over", "force", False),
                                        ("Cancel", "cancel", True)])}
    return {}


class FormService:
    """``node.forms``: see the module's text."""

    def __init__(self, node):
        self.node = node

    # -- pages -----------------------------------------------------------------------

    @deferred
    async def open_form(self, session, name, record_id=None):
        """What ``GET /forms/<name>[?r=id]`` shows: the form, the record
        (None for a new one), its hash, the rules' state and the page's SIPs."""
        form = self._form(name)
        record = None
        if record_id is not None:
            record_id = record_id_of(record_id)
            record = await self._record(session, form, record_id)
        await self._stored(session)
        sip = await self.node.sips.issue(session.id, form.name, record_id, {"use": "form"})
        values = {n: (record or {}).get(n) for n in form.fields}
        state = form.evaluate({n: v for n, v in values.items() if v is not None})
        return {"form": form, "record": record, "record_id": record_id,
                "hash": record_hash(record) if record else "", "sip": sip,
                "lock_timeout": getattr(self.node.record_locks, "timeout", None),
                "state": state, "options": await self._options(session, form),
                "typeahead": await self._sips(session, form, record_id, "typeahead",
                                              [f.name for f in form.fields.values()
                                               if f.typeahead]),
                "downloads": await self._sips(session, form, record_id, "download",
                                              [d.name for d in form.downloads.values()
                                               if record_id or not d.fields])}

    @deferred
    async def open_view(self, session, name):
        """What ``GET /forms/<table view>`` shows: its rows (in their order),
        a SIP for drag and drop and saving views, and the saved views."""
        view = self._view(name)
        order = [view.order_field, "id"] if view.order_field else ["id"]
        rows = await self._records(session, view.form.item, "open",
                                   {"order_by": order, "limit": self._max_rows()})
        await self._stored(session)
        sip = await self.node.sips.issue(session.id, view.name, None, {"use": "table"})
        form = view.form
        downloads = await self._sips(session, form, None, "download",
                                     [d.name for d in form.downloads.values() if not d.fields])
        return {"view": view, "rows": rows, "sip": sip, "downloads": downloads,
                "views": await self._visible_views(session, view)}

    # -- load, save, delete ----------------------------------------------------------

    @deferred
    async def load(self, session, token, values, record_id=None):
        """The rules' answer to the form's current ``values`` (form-update,
        element-update)."""
        form, _ = await self._sip(session, token, "form", record_id)
        return minimal(**form.evaluate(values))

    @deferred
    async def save(self, session, token, values, submit_reason="save", hash_=None,
                   tab=None, record_id=None):
        """Validate and store ``values``: a new record, or the SIP's record
        if it still has the hash the form was loaded with."""
        if submit_reason not in SUBMIT_REASONS:
            raise errors.BadArguments(f"submit_reason must be {' or '.join(SUBMIT_REASONS)}")
        form, sip = await self._sip(session, token, "form", record_id)
        rid = sip.record_id
        self._authorise(session, form.item, "create" if rid is None else "edit", "save to")
        old = await self._record(session, form, rid) if rid is not None else None
        if old is not None:
            await self._not_locked_by_other(session, form, rid, tab)
        clean = form.validate(values, await self._choices(session, form, values))
        if not isinstance(clean, list):
            clean = await self._foreign_files(form, clean, old) or clean
        if isinstance(clean, list):
            field, message = clean[0]
            return minimal(message, "error", **{"field-name": field, "field-message": message,
                                                "redirect": "no"})
        if rid is None:
            rid = await self._insert(session, form, clean)
        else:
            await self._update(session, form, rid, clean, old, hash_)
        saved = await self._record(session, form, rid)
        await self._files_replaced(session, form, old, saved)
        if form.lock != NONE and old is not None:
            await self.node.record_locks.release(form.name, rid, session.id, form.lock,
                                                 tab=tab)
        answer = minimal("saved", alert=alert("Saved.", timeout=3000), **form.evaluate(
            {n: v for n, v in saved.items() if n in form.fields and v is not None}))
        answer["element-update"]["recordHashMd5"] = {"attr": {"value": record_hash(saved)}}
        answer.update(self._after_save(form, submit_reason, rid, old is None))
        answer["record-id"] = rid
        return answer

    @deferred
    async def delete(self, session, token, record_id=None, tab=None):
        """Delete the SIP's record, unless another editor holds its lock."""
        form, sip = await self._sip(session, token, "form", record_id)
        if sip.record_id is None:
            raise errors.BadArguments("this form shows a new record: there is nothing to delete")
        rid = sip.record_id
        old = await self._record(session, form, rid)
        await self._not_locked_by_other(session, form, rid, tab)
        await self._records(session, form.item, "apply", {"delete": [rid]})
        await self._files_replaced(session, form, old, {})
        if form.lock != NONE:
            await self.node.record_locks.release(form.name, rid, session.id, form.lock, tab=tab)
        return minimal("deleted", **self._redirect_close(form))

    # -- record locks (QFQ's dirty) --------------------------------------------------

    @deferred
    async def dirty(self, session, token, action, hash_=None, tab=None, record_id=None):
        """Lock, extend, release or force the lock of the SIP's record: QFQ's
        Lock Response (``success | error | conflict | conflict_allow_force``)."""
        if action not in LOCK_ACTIONS:
            raise errors.BadArguments(f"action must be one of {', '.join(LOCK_ACTIONS)}")
        form, sip = await self._sip(session, token, "form", record_id)
        if sip.record_id is None:
            return minimal()  # a new record: nobody else can be editing it
        rid = sip.record_id
        record = await self._record(session, form, rid)
        self._authorise(session, form.item, "edit", "edit")
        locks = self.node.record_locks
        if action == "release":
            return (await locks.release(form.name, rid, session.id, form.lock, tab=tab)).as_dict()
        if hash_ and hash_ != record_hash(record):
            return minimal("this record was changed by someone else since you opened it: "
                           "reload the form", "error")
        step = {"lock": locks.lock, "extend": locks.extend, "force": locks.force}[action]
        answer = await step(form.name, rid, session.id, form.lock, hash_ or None, tab=tab)
        return {**answer.as_dict(), **conflict_alert(answer)}

    # -- files -----------------------------------------------------------------------

    @deferred
    async def upload(self, session, token, name, filename, content_type, source):
        """Store an uploaded file for the form's file field ``name``: the
        field's value becomes the new file's id (stored at the next save)."""
        form, _ = await self._sip(session, token, "form")
        field = self._file_field(form, name)
        stored = await self.node.files.upload(session, form.item, filename, content_type,
                                               source)
        return minimal(f"uploaded {stored['name']}", file=stored,
                       **{"form-update": [{"form-element": field.name, "value": stored["id"]}]})

    @deferred
    async def delete_file(self, session, token, name, file_id=None):
        """Empty the file field ``name``. A file uploaded since the record
        was saved (``file_id``, not the record's value) is deleted now; the
        record's own file goes when the form is saved without it."""
        form, sip = await self._sip(session, token, "form")
        field = self._file_field(form, name)
        saved = None
        if sip.record_id is not None:
            saved = (await self._record(session, form, sip.record_id)).get(field.name)
        if file_id and file_id != saved:
            if field.clean(file_id)[1] is not None:
                raise errors.BadArguments(f"{file_id[:40]!r} is not a file id")
            # Only an upload to this form's item that no record holds: never
            # another record's file, nor a file of another item.
            if (await self.node.files.item_path(file_id) == form.item.path
                    and not await self._still_used(session, form, file_id)):
                await self.node.files.delete(session, file_id)
        return minimal("file removed",
                       **{"form-update": [{"form-element": field.name, "value": ""}]})

    @deferred
    async def download(self, session, token, params):
        """The file (``hpxd.core.files.File``) or JSON answer of the
        download the SIP names (hpxd.core.downloads)."""
        from hpxd.core.downloads import produce  # the download modes' libraries load late
        form, sip = await self._sip(session, token, "download")
        download = form.downloads.get(sip.params.get("name"))
        if download is None:
            raise errors.FunctionNotFound("this download is no longer offered: reload the page")
        record = None
        if sip.record_id is not None:
            record = await self._record(session, form, sip.record_id)
        return await produce(self.node, session, download, record, params)

    # -- typeahead -------------------------------------------------------------------

    @deferred
    async def typeahead(self, session, token, query):
        """Up to TYPEAHEAD_LIMIT ``{"key", "value"}`` suggestions for the
        SIP's field that contain ``query`` (case as the database compares)."""
        form, sip = await self._sip(session, token, "typeahead")
        field = form.fields.get(sip.params.get("name"))
        if field is None or field.typeahead is None:
            raise errors.FunctionNotFound("this field no longer suggests values: reload the page")
        if not isinstance(query, str) or len(query) > MAX_QUERY:
            raise errors.BadArguments(f"query must be text of at most {MAX_QUERY} characters")
        show = field.typeahead["show"]
        filters = [[show, "contains", query.strip()]] if query.strip() else None
        rows = await self._records(session, field.typeahead["item"], "open",
                                   {"filters": filters, "order_by": [show], "fields": [show],
                                    "limit": TYPEAHEAD_LIMIT})
        seen = list(dict.fromkeys(row[show] for row in rows if row.get(show) is not None))
        return minimal(typeahead=[{"key": value, "value": value} for value in seen])

    # -- table views -----------------------------------------------------------------

    @deferred
    async def drag_and_drop(self, session, token, drag_id, set_to, hover_id):
        """Move record ``drag_id`` before or after ``hover_id`` in the SIP's
        table view: renumbers the order field, answers each moved row's new
        position as element-update (``row-<id>``: ``data-dnd-position``)."""
        view = await self._view_sip(session, token)
        if view.order_field is None:
            raise errors.BadArguments(f"table view {view.name!r} has no order to change")
        if set_to not in ("before", "after"):
            raise errors.BadArguments("setTo must be before or after")
        drag_id, hover_id = record_id_of(drag_id), record_id_of(hover_id)
        rows = await self._records(session, view.form.item, "open",
                                   {"order_by": [view.order_field, "id"],
                                    "fields": ["id", view.order_field],
                                    "limit": self._max_rows() + 1})
        if len(rows) > self._max_rows():
            raise errors.BadArguments("this table has too many rows to reorder by drag and drop")
        ids = [row["id"] for row in rows]
        if drag_id not in ids or hover_id not in ids:
            raise errors.BadArguments("dragId and hoverId must be records of this table")
        ids.remove(drag_id)
        ids.insert(ids.index(hover_id) + (set_to == "after"), drag_id)
        now = {row["id"]: row[view.order_field] for row in rows}
        moved = [{"id": rid, view.order_field: n} for n, rid in enumerate(ids, 1)
                 if now[rid] != n]
        if moved:
            await self._records(session, view.form.item, "apply", {"update": moved})
        return minimal("order saved", **{"element-update": {
            f"row-{m['id']}": {"attr": {"data-dnd-position": str(m[view.order_field])}}
            for m in moved}})

    @deferred
    async def save_view(self, session, token, body):
        """Tablesorter's "save view": ``{"name", "public", "tableId", "view":
        {"columnSelection", "filters", "sortList"}}`` kept in the scope, per
        owner (a public view: for everyone; needs edit on the item)."""
        view = await self._view_sip(session, token)
        name, public, saved = _checked_view(body, view)
        if public:
            self._authorise(session, view.form.item, "edit", "save public views of")
        elif session.user_name is None:
            raise errors.PermissionDenied("log in to save your own views")
        owner = "" if public else session.user_name
        key = VIEW_KEY + view.name
        views = await self.node.scope.get(key, {}) or {}
        mine = views.setdefault(owner, {})
        if name not in mine and len(mine) >= MAX_VIEWS:
            raise errors.BadArguments(f"at most {MAX_VIEWS} saved views per table")
        mine[name] = saved
        # Read, change, write: two saves at one instant may race, and the
        # last wins (the scope has no atomic update): a view is a preference.
        await self.node.scope.set(key, views)
        return minimal(f"view {name!r} saved")

    async def _visible_views(self, session, view):
        views = await self.node.scope.get(VIEW_KEY + view.name, {}) or {}
        shown = [{"name": n, "public": True, "view": v} for n, v in views.get("", {}).items()]
        if session.user_name is not None:
            shown += [{"name": n, "public": False, "view": v}
                      for n, v in views.get(session.user_name, {}).items()]
        return shown

    # -- helpers ---------------------------------------------------------------------

    def _form(self, name):
        form = self.node.task.form_by_name(name) if isinstance(name, str) else None
        if form is None:
            raise errors.FunctionNotFound(f"no form {str(name)[:60]!r}")
        return form

    def _view(self, name):
        view = self.node.task.table_view_by_name(name) if isinstance(name, str) else None
        if view is None:
            raise errors.FunctionNotFound(f"no table view {str(name)[:60]!r}")
        return view

    async def _sip(self, session, token, use, record_id=None):
        """The form and SIP of ``token``, for ``use``."""
        sip = await self.node.sips.resolve(token, session.id, record_id)
        if sip.params.get("use") != use:
            raise errors.PermissionDenied(f"this SIP is not one for {use}")
        form = self.node.task.form_by_name(sip.form)
        if form is None:
            raise errors.FunctionNotFound("this form no longer exists: reload the page")
        return form, sip

    async def _view_sip(self, session, token):
        sip = await self.node.sips.resolve(token, session.id)
        if sip.params.get("use") != "table":
            raise errors.PermissionDenied("this SIP is not one of a table view")
        return self._view(sip.form)

    async def _sips(self, session, form, record_id, use, names):
        return {name: await self.node.sips.issue(session.id, form.name, record_id,
                                                 {"use": use, "name": name})
                for name in names}

    async def _stored(self, session):
        """SIPs are bound to a stored session: a transient guest is stored
        first (the door's keep_session then gives it its cookie)."""
        if session.transient:
            await self.node.sessions.add(session)
            session.transient = False

    def _records(self, session, item, op, kwargs):
        return self.node.dispatcher.records(session, item, op, kwargs, {"door": DOOR})

    async def _record(self, session, form, record_id):
        found = await self._records(session, form.item, "get", {"id": record_id})
        if found is None:
            raise errors.FunctionNotFound(f"{form.item.caption} has no record {record_id}")
        return found["record"]

    async def _not_locked_by_other(self, session, form, record_id, tab):
        if form.lock == NONE:
            return
        if await self.node.record_locks.locked_by_other(form.name, record_id, session.id, tab):
            raise errors.PermissionDenied("another user is editing this record: try again "
                                          "when they are done")

    async def _options(self, session, form):
        """Each ``options_from`` select's options, read now."""
        options = {}
        for field in form.fields.values():
            source = field.options_from
            if source is None:
                continue
            rows = await self._records(session, source["item"], "open",
                                       {"order_by": [source["show"]], "limit": self._max_rows(),
                                        "fields": list(dict.fromkeys(["id", source["show"]]))})
            options[field.name] = [{"value": row[source["key"]], "text": str(row[source["show"]])}
                                   for row in rows]
        return options

    async def _choices(self, session, form, values):
        """For ``options_from`` fields: is the chosen value a record there?"""
        choices = {}
        for field in form.fields.values():
            source = field.options_from
            value = values.get(field.name) if isinstance(values, dict) else None
            if source is None or value in (None, ""):
                continue
            clean, problem = field.clean(value)
            if problem:
                continue  # validate reports the type error
            found = await self._records(session, source["item"], "count",
                                        {"filters": [[source["key"], "eq", clean]]})
            choices[field.name] = {clean} if found else set()
        return choices

    async def _insert(self, session, form, clean):
        values = dict(clean)
        for view in form.table_views.values():
            order = view.order_field
            # A new record goes last. Two inserts at one instant may get the
            # same number: rows are ordered by (order field, id), so they
            # still show in the order they were made, and the next drag and
            # drop renumbers the table.
            if order and order not in values:
                top = await self._records(session, form.item, "aggregate",
                                          {"funcs": {order: "max"}})
                values[order] = (top.get(order) or 0) + 1
        ids = await self._records(session, form.item, "apply", {"insert": [values]})
        return ids[0]

    async def _update(self, session, form, record_id, clean, old, hash_):
        if not hash_:
            raise errors.BadArguments("recordHashMd5 is missing: reload the form")
        try:
            await self._records(session, form.item, "apply",
                                {"update": [{"id": record_id, **clean}],
                                 "expect_hash": {record_id: hash_}})
        except errors.StaleRecord:
            raise errors.StaleRecord("this record was changed by someone else since you "
                                     "opened it: reload the form (your changes are not "
                                     "saved)") from None

    async def _foreign_files(self, form, clean, old):
        """``[(field, message)]`` for a file field given a file id it did not
        hold that is no upload to this form's item (another item's file, a
        made-up id), else None: a record never points at a file it may not."""
        for field in form.fields.values():
            file_id = clean.get(field.name)
            if field.kind != "file" or not file_id or file_id == (old or {}).get(field.name):
                continue
            if await self.node.files.item_path(file_id) != form.item.path:
                message = f"{field.label} is not a file uploaded to this form"
                return [(field.name, message)]
        return None

    async def _still_used(self, session, form, file_id):
        """Whether a record of the form's item holds ``file_id`` in a file field."""
        for field in form.fields.values():
            if field.kind == "file" and await self._records(
                    session, form.item, "count", {"filters": [[field.name, "eq", file_id]]}):
                return True
        return False

    async def _files_replaced(self, session, form, old, new):
        """After a save or delete: the files the record no longer holds (and
        no other record holds either)."""
        if not old:
            return
        for field in form.fields.values():
            gone = old.get(field.name)
            if field.kind == "file" and gone and gone != new.get(field.name):
                if await self._still_used(session, form, gone):
                    continue
                try:
                    await self.node.files.delete(session, gone)
                except errors.HpxdError as e:  # the record is saved; the file stays
                    log.warn("form {form}: could not delete replaced file {id}: {e}",
                             form=form.name, id=gone, e=e.msg)

    def _after_save(self, form, submit_reason, record_id, new):
        if submit_reason == "save,close":
            return self._redirect_close(form)
        if new:  # the page must now edit the record it made: its own URL
            return {"redirect": "url-skip-history",
                    "redirect-url": f"/forms/{form.name}?r={record_id}"}
        return {"redirect": "no"}

    def _redirect_close(self, form):
        if form.close_url:
            return {"redirect": "url", "redirect-url": form.close_url}
        return {"redirect": "close"}

    def _file_field(self, form, name):
        field = form.fields.get(name) if isinstance(name, str) else None
        if field is None or field.kind != "file":
            raise errors.BadArguments(f"{str(name)[:60]!r} is not a file field of this form")
        return field

    def _authorise(self, session, item, privilege, what):
        if not self.node.auth.can(session.user_info, item.privilege_key, privilege):
            raise errors.PermissionDenied(f"your role {session.role!r} lacks {privilege!r} "
                                          f"on {item.privilege_key!r} to {what} it")

    def _max_rows(self):
        return getattr(self.node.records, "max_rows", 1000) if self.node.records else 1000


def _checked_view(body, view):
    """``(name, public, view)`` from Tablesorter's save-view body, checked."""
    if not isinstance(body, dict):
        raise errors.BadArguments("a saved view is an object {name, public, tableId, view}")
    name, public, table, saved = (body.get(k) for k in ("name", "public", "tableId", "view"))
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
        raise errors.BadArguments("a view's name must be text of 1 to 100 characters")
    if type(public) is not bool:
        raise errors.BadArguments("public must be true or false")
    if table != view.name:
        raise errors.BadArguments(f"tableId must be {view.name!r}, the table of this SIP")
    if not isinstance(saved, dict) or set(saved) - {"columnSelection", "filters", "sortList"}:
        raise errors.BadArguments("view must be {columnSelection, filters, sortList}")
    columns = saved.get("columnSelection", [])
    filters = saved.get("filters", [])
    sort = saved.get("sortList", [])
    if not (isinstance(columns, list) and len(columns) <= 100
            and all(type(c) in (int, str) and len(str(c)) <= 100 for c in columns)):
        raise errors.BadArguments("columnSelection must be a list of column ids")
    if not (isinstance(filters, list) and len(filters) <= 100
            and all(isinstance(f, str) and len(f) <= 200 for f in filters)):
        raise errors.BadArguments("filters must be a list of strings")
    if not (isinstance(sort, list) and len(sort) <= 100 and all(
            isinstance(s, list) and len(s) == 2 and all(type(n) is int for n in s)
            for s in sort)):
        raise errors.BadArguments("sortList must be a list of [column, direction] pairs")
    return name.strip(), public, {"columnSelection": columns, "filters": filters,
                                  "sortList": sort}
