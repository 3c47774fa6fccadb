"""The form door's HTML: a form page and a table-view page (docs/forms.md).

Plain semantic markup that works without a CSS framework or a script (a
form posts to ``/forms/api/save``); ``/static/hpxd-forms.js`` makes it
QFQ's client, and ``/static/hpxd-forms.css`` gives it a plain look. Every
value is escaped; the page carries no inline script or style, so its
Content-Security-Policy allows this server's files only.

The markup the script relies on (its contract):

- ``<form class="hpxd-form" data-api="/forms/api/" data-form="<name>"
  data-record="<id or empty>" data-lock="exclusive|advisory|none"
  data-lock-timeout="<seconds a lock lives unless extended, or empty>">`` with
  the hidden inputs ``s`` (the SIP), ``recordHashMd5`` (``id`` too) and
  ``tabUniqId`` (empty: the script fills it);
- one ``<div class="form-group" id="group-<field>" data-field="<field>">``
  per field, holding its ``<label>``, its control(s) named ``<field>`` and a
  ``<p class="help-block" id="help-<field>">`` for messages;
- a file field: ``<input type="hidden" name="<field>">`` (the file's id),
  ``<input type="file" data-upload-for="<field>" accept=...>``, a
  ``<button type="button" data-file-delete="<field>">``, and, for a saved
  record, ``<a data-download="<name>" href="/forms/api/download?s=...">``
  / ``<img data-download="<name>">`` for each declared download of it;
- a typeahead: ``<input data-typeahead-sip="<sip>" list="list-<field>">``
  and an empty ``<datalist id="list-<field>">``;
- buttons ``<button type="submit" name="submit_reason" value="save">``,
  ``value="save,close"``, and ``<button type="button" data-action="delete">``;
- ``<div id="hpxd-alerts">`` where alerts go.

A table view: ``<table class="hpxd-table" id="<view>" data-api=... data-sip=...
data-dnd="<order field or empty>">``; each row ``<tr id="row-<id>"
data-dnd-id="<id>" data-dnd-position="<n>">`` whose first cell links to
``/forms/<form>?r=<id>``; saved views in ``<ul class="hpxd-views">`` with
each view's JSON in ``data-view``.
"""

import json
from html import escape

SCRIPT = "/static/hpxd-forms.js"
STYLE = "/static/hpxd-forms.css"
API = "/forms/api/"
INPUT_TYPES = {"text": "text", "number": "number", "date": "date"}
IMAGE_MODES = ("thumbnail",)


def content_security_policy():
    return (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def a(value):
    """An attribute value, escaped (quotes too)."""
    return escape("" if value is None else str(value), quote=True)


def document(title, body):
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{escape(title)}</title>\n<link rel="stylesheet" href="{STYLE}">\n'
            f'<script src="{SCRIPT}" defer></script>\n</head>\n<body>\n<main>\n{body}\n'
            f'<div id="hpxd-alerts" aria-live="polite"></div>\n</main>\n</body>\n</html>\n')


def error_page(message):
    return document("Error", f'<h1>Error</h1>\n<p class="hpxd-error">{escape(message)}</p>\n'
                             '<p><a href="/">Back to the console</a></p>')


def render_page(page):
    return render_view(page) if "view" in page else render_form(page)


# -- a form ---------------------------------------------------------------------------

def render_form(page):
    form, record = page["form"], page["record"] or {}
    state = {entry["form-element"]: entry for entry in page["state"]["form-update"]}
    title = form.caption + (f" #{page['record_id']}" if page["record_id"] else " (new)")
    groups = "\n".join(field_group(field, record.get(field.name), state[field.name], page)
                       for field in form.fields.values())
    delete = ('<button type="button" data-action="delete">Delete</button>'
              if page["record_id"] else "")
    back = (f'<a class="hpxd-back" href="{a(form.close_url)}">Back to the list</a>'
            if form.close_url else "")
    back += download_links(form, page["downloads"], lambda d: not d.fields)
    body = (f'<h1>{escape(title)}</h1>\n'
            f'<form class="hpxd-form" method="post" action="{API}save" novalidate '
            f'data-api="{API}" data-form="{a(form.name)}" '
            f'data-record="{a(page["record_id"])}" data-lock="{a(form.lock)}" '
            f'data-lock-timeout="{a(page.get("lock_timeout"))}">\n'
            f'<input type="hidden" name="s" value="{a(page["sip"])}">\n'
            f'<input type="hidden" name="recordHashMd5" id="recordHashMd5" '
            f'value="{a(page["hash"])}">\n'
            f'<input type="hidden" name="tabUniqId" value="">\n'
            f'{groups}\n<div class="hpxd-buttons">\n'
            f'<button type="submit" name="submit_reason" value="save">Save</button>\n'
            f'<button type="submit" name="submit_reason" value="save,close">Save and close'
            f'</button>\n{delete}\n{back}\n</div>\n</form>')
    return document(title, body)


def field_group(field, value, shown, page):
    name = field.name
    value = shown.get("value", value)
    classes = "form-group" + (" hidden" if shown["hidden"] else "")
    flags = (" required" if shown["required"] else "") + (" disabled" if shown["disabled"] else "")
    hidden = " hidden" if shown["hidden"] else ""
    control = CONTROLS[field.kind](field, value, flags, page)
    label_for = "" if field.kind == "radio" else f' for="f-{a(name)}"'
    return (f'<div class="{classes}" id="group-{a(name)}" data-field="{a(name)}"{hidden}>\n'
            f'<label class="control-label"{label_for}>{escape(field.label)}</label>\n'
            f'{control}\n<p class="help-block" id="help-{a(name)}"></p>\n</div>')


def _text(field, value, flags, page):
    kind = INPUT_TYPES.get(field.kind, "text")
    extra = ""
    if field.max_length and field.kind == "text":
        extra += f' maxlength="{field.max_length}"'
    if field.min is not None:
        extra += f' min="{a(field.min)}"'
    if field.max is not None:
        extra += f' max="{a(field.max)}"'
    if field.kind == "number" and field.type == "real":
        extra += ' step="any"'
    sip = page["typeahead"].get(field.name)
    datalist = ""
    if sip:
        extra += f' data-typeahead-sip="{a(sip)}" list="list-{a(field.name)}" autocomplete="off"'
        datalist = f'\n<datalist id="list-{a(field.name)}"></datalist>'
    return (f'<input class="form-control" type="{kind}" id="f-{a(field.name)}" '
            f'name="{a(field.name)}" value="{a(value)}"{extra}{flags}>{datalist}')


def _textarea(field, value, flags, page):
    return (f'<textarea class="form-control" id="f-{a(field.name)}" name="{a(field.name)}" '
            f'rows="4" maxlength="{field.max_length}"{flags}>{escape(value or "")}</textarea>')


def _checkbox(field, value, flags, page):
    checked = " checked" if value is True else ""
    return (f'<input type="checkbox" id="f-{a(field.name)}" name="{a(field.name)}" '
            f'value="true"{checked}{flags}>')


def _options(field, page):
    return field.options if field.options is not None else page["options"].get(field.name, [])


def _select(field, value, flags, page):
    options = ['<option value="">—</option>'] + [
        f'<option value="{a(o["value"])}"{" selected" if o["value"] == value else ""}>'
        f'{escape(o["text"])}</option>' for o in _options(field, page)]
    return (f'<select class="form-control" id="f-{a(field.name)}" name="{a(field.name)}"'
            f'{flags}>\n' + "\n".join(options) + "\n</select>")


def _radio(field, value, flags, page):
    buttons = [f'<label><input type="radio" name="{a(field.name)}" value="{a(o["value"])}"'
               f'{" checked" if o["value"] == value else ""}{flags}> {escape(o["text"])}</label>'
               for o in _options(field, page)]
    return f'<fieldset class="radio" id="f-{a(field.name)}">' + "\n".join(buttons) + "</fieldset>"


def _file(field, value, flags, page):
    accept = ",".join(sorted(page["form"].item.upload_extensions or ()))
    links = []
    downloads = page["form"].downloads
    for name, sip in page["downloads"].items():
        download = downloads[name]
        if field.name not in download.fields:
            continue
        href = f"{API}download?s={a(sip)}"
        if download.mode in IMAGE_MODES:
            links.append(f'<img class="hpxd-thumbnail" data-download="{a(name)}" '
                         f'src="{href}" alt="{escape(field.label)}">' if value else "")
        else:
            links.append(f'<a class="hpxd-download" data-download="{a(name)}" href="{href}"'
                         f'{"" if value else " hidden"}>Download</a>')
    return (f'<input type="hidden" name="{a(field.name)}" value="{a(value)}">\n'
            f'<input type="file" id="f-{a(field.name)}" data-upload-for="{a(field.name)}" '
            f'accept="{a(accept)}"{flags}>\n'
            f'<button type="button" data-file-delete="{a(field.name)}">Remove file</button>\n'
            + "\n".join(link for link in links if link))


CONTROLS = {"text": _text, "number": _text, "date": _text, "textarea": _textarea,
            "checkbox": _checkbox, "select": _select, "radio": _radio, "file": _file}


def download_links(form, sips, wanted):
    """Links to the form's declared downloads that ``wanted(download)`` picks."""
    links = [f'<a class="hpxd-download" data-download="{a(name)}" '
             f'href="{API}download?s={a(sip)}">{escape(name.replace("_", " ").capitalize())}</a>'
             for name, sip in sips.items() if wanted(form.downloads[name])]
    return "".join("\n" + link for link in links)


# -- a table view ---------------------------------------------------------------------

def render_view(page):
    view, rows = page["view"], page["rows"]
    form = view.form
    heads = "".join(f'<th data-column="{i}">{escape(label)}</th>'
                    for i, label in enumerate(view.labels()))
    body = "\n".join(_row(view, row, n) for n, row in enumerate(rows, 1))
    saved = "\n".join(f'<li><button type="button" data-view="{a(json.dumps(v["view"]))}">'
                      f'{escape(v["name"])}</button>{" (public)" if v["public"] else ""}</li>'
                      for v in page["views"])
    html = (f'<h1>{escape(view.caption)}</h1>\n'
            f'<p><a class="hpxd-new" href="/forms/{a(form.name)}">New</a>'
            f'{download_links(form, page["downloads"], lambda d: True)}</p>\n'
            f'<table class="hpxd-table" id="{a(view.name)}" data-api="{API}" '
            f'data-sip="{a(page["sip"])}" data-dnd="{a(view.order_field or "")}">\n'
            f'<thead><tr>{heads}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n'
            f'<section class="hpxd-saved-views"><h2>Saved views</h2>\n'
            f'<ul class="hpxd-views">\n{saved}\n</ul>\n'
            f'<form class="hpxd-save-view"><label>Name <input name="name" required '
            f'maxlength="100"></label> <label><input type="checkbox" name="public"> public'
            f'</label> <button type="submit">Save this view</button></form>\n</section>')
    return document(view.caption, html)


def _row(view, row, n):
    link = f"/forms/{a(view.form.name)}?r={row['id']}"
    cells = []
    for i, column in enumerate(view.columns):
        text = escape("" if row.get(column) is None else str(row.get(column)))
        cells.append(f'<td><a href="{link}">{text or "#" + str(row["id"])}</a></td>' if i == 0
                     else f"<td>{text}</td>")
    drag = ' draggable="true"' if view.order_field else ""
    return (f'<tr id="row-{row["id"]}" data-dnd-id="{row["id"]}" data-dnd-position="{n}"'
            f'{drag}>' + "".join(cells) + "</tr>")
