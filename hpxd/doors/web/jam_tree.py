"""The task tree as Jam.py's browser client (jam.js) loads it: the ``load``
answer of ``/api`` (hpxd/doors/web/jam.py), rendered from the core's
``hpxd.core.tree.describe(node, session)``.

jam.js builds a tree of task -> groups -> items, each item with its
fields as arrays in the order of jam.js's ``field_attr``. hpxd's tree has
no groups and its reports are functions of items, so the rendering adds:

- one group "hpxd_items" holding every item below the task, nested items
  too (flattened: jam.js nests only master-detail tables), named by their
  dotted path with ``__`` for the dots (``catalog``, ``catalog__parts``);
- one group "hpxd_reports" holding one jam.js Report per report an item
  declares (``@item.report``), its parameters as the Report's params;
- the field ``id`` (the primary key) before the item's own fields.

Items keep their hpxd ids; the two groups and the reports take the ids
after the last item's (``JamIds``), fixed by the app alone, so every node
running the same app numbers them alike. ``modification`` is a number
made from the app's shape: a page loaded before the app changed is told
so (Jam.py's PROJECT_MODIFIED) instead of sending stale ids.
"""

import json
import zlib

from hpxd.core.auth import PRIVILEGES

# Item types of jam.js's AbsrtactItem.types (1-based)
TASK_TYPE, ITEMS_TYPE, REPORTS_TYPE, ITEM_TYPE, REPORT_TYPE = 5, 6, 9, 10, 13
# Data types of jam.js's consts
TEXT, INTEGER, FLOAT, DATE, DATETIME, BOOLEAN = 1, 2, 3, 5, 6, 7
DATA_TYPES = {"text": TEXT, "integer": INTEGER, "real": FLOAT, "date": DATE,
              "datetime": DATETIME, "boolean": BOOLEAN}
ALIGN_LEFT, ALIGN_RIGHT = 1, 3
ITEMS_GROUP, REPORTS_GROUP = "hpxd_items", "hpxd_reports"

SETTINGS = {"SAFE_MODE": True, "DYNAMIC_JS": False, "FORMS_IN_TABS": False,
            "FULL_WIDTH": False, "DEBUGGING": False, "VERSION": "hpxd"}
LOCALE = {"DECIMAL_POINT": ".", "MON_DECIMAL_POINT": ".", "MON_THOUSANDS_SEP": "",
          "CURRENCY_SYMBOL": "", "FRAC_DIGITS": 2, "P_CS_PRECEDES": False,
          "N_CS_PRECEDES": False, "P_SEP_BY_SPACE": True, "N_SEP_BY_SPACE": True,
          "POSITIVE_SIGN": "", "NEGATIVE_SIGN": "-", "P_SIGN_POSN": 1, "N_SIGN_POSN": 1,
          "D_FMT": "%Y-%m-%d", "D_T_FMT": "%Y-%m-%d %H:%M:%S", "RTL": False}
# The texts jam.js shows (its ``language.*``); "%s" is filled in by jam.js.
LANGUAGE = {
    "yes": "Yes", "no": "No", "true": "TRUE", "false": "FALSE", "of": "of", "page": "Page",
    "print": "Print", "close": "Close", "cancel": "Cancel", "field": "Field",
    "filter": "Filter", "filters": "Filters", "set_filters": "Set filters",
    "range_from": "from", "range_to": "to", "by_user": "by", "created": "Created",
    "modified": "Modified", "deleted": "Deleted", "new_value": "new value",
    "select_all": "Select all", "unselect_all": "Unselect all", "show_all": "Show all",
    "show_selected": "Show selected", "items_selected": "selected: %s",
    "refresh_page": "Refresh page", "view_rec_history": "Record history",
    "delete_record": "Delete the record?", "no_record": "No record is selected.",
    "value_required": "a value is required", "value_loading": "loading",
    "invalid_value": "%s: invalid value", "invalid_int": "%s: must be an integer",
    "invalid_float": "%s: must be a number", "invalid_cur": "%s: must be an amount",
    "invalid_date": "%s: must be a date", "invalid_bool": "%s: must be true or false",
    "invalid_length": "The text is longer than %s characters", "invalid_range": "Invalid range",
    "selection_limit_exceeded": "At most %s records may be selected",
    "cant_view": "%s: you may not view this", "cant_delete_used_record":
        "The record is in use and cannot be deleted.",
    "server_request_error": "The server did not answer the request",
    "website_maintenance": "The site is under maintenance.",
    "version_changed": "The application changed on the server: reload the page.",
    "project_error": "The application could not be loaded", "no_project": "No application",
    "value_in_empty_dataset": "%s: no record to read or change a value of",
    "not_edit_insert_state": "%s is not being edited or inserted",
    "no_primary_field_changing": "%s: the primary key cannot change",
    "no_deleted_field_changing": "%s: the deleted flag cannot change",
    "append_not_active": "%s is not open: cannot append",
    "append_not_browse": "%s is being edited: cannot append",
    "append_master_not_changing": "%s: its master is not being edited: cannot append",
    "edit_not_active": "%s is not open: cannot edit",
    "edit_not_browse": "%s is being changed: cannot edit",
    "edit_no_records": "%s has no record to edit",
    "edit_master_not_changing": "%s: its master is not being edited: cannot edit",
    "delete_not_active": "%s is not open: cannot delete",
    "delete_no_records": "%s has no record to delete",
    "delete_master_not_changing": "%s: its master is not being edited: cannot delete",
    "cancel_invalid_state": "%s is not being edited or inserted: nothing to cancel",
    "week_start": "0",
    "days_min": "[Su, Mo, Tu, We, Th, Fr, Sa, Su]",
    "months": "[January, February, March, April, May, June, July, August, September, "
              "October, November, December]",
    "months_short": "[Jan, Feb, Mar, Apr, May, Jun, Jul, Aug, Sep, Oct, Nov, Dec]",
}


def jam_name(path):
    """An item's name in jam.js: its dotted path, ``__`` for each dot."""
    return path.replace(".", "__")


class JamIds:
    """The ids jam.js knows the groups and reports by, from the app's tree
    (every report, whoever asks), and the app's ``modification`` number."""

    def __init__(self, task):
        items = task.items()  # the task first, then every item, ids 1..n
        last = max(item.id for item in items)
        self.task_id = task.id
        self.items_group, self.reports_group = last + 1, last + 2
        self.reports = {}      # jam id -> (item id, report name)
        self.report_ids = {}   # (item id, report name) -> jam id
        next_id = last + 3
        for item in items:
            for name in item.reports:
                self.reports[next_id] = (item.id, name)
                self.report_ids[(item.id, name)] = next_id
                next_id += 1
        self.modification = _modification(items)

    def report(self, jam_id):
        """``(item id, report name)`` of the report jam.js calls ``jam_id``, or None."""
        return self.reports.get(jam_id) if type(jam_id) is int else None


def _modification(items):
    """A number that changes when the app's shape does (never 0: jam.js
    takes 0 for "no number")."""
    shape = [[item.id, item.path, item.fields, sorted(item.functions), list(item.reports),
              item.client_module_path is not None] for item in items]
    return zlib.crc32(json.dumps(shape, sort_keys=True).encode()) or 1


def render(ids, description, session):
    """The data of jam.js's ``load``: ``{task, settings, locale, language,
    user_info, privileges}`` for ``description`` (describe(node, session))."""
    privileges = {ids.task_id: _privileges(description["privileges"]),
                  ids.items_group: _privileges({"view": True}),
                  ids.reports_group: _privileges({"view": True})}
    names = {item["id"]: jam_name(item["path"]) for item in description["items"]}
    items, reports = [], []
    for item in description["items"]:
        item_reports = [_report(ids, item["id"], r, names[item["id"]]) for r in item["reports"]]
        reports += item_reports
        items.append([ITEM_TYPE, _item(item, names[item["id"]], item_reports)])
        privileges[item["id"]] = _privileges(item["privileges"])
    reports += [_report(ids, ids.task_id, r, description["name"])
                for r in description["reports"]]
    for report in reports:
        privileges[report["id"]] = _privileges({"view": True})
    _unique_report_names(reports, set(names.values()))
    groups = [[ITEMS_TYPE, _group(ids.items_group, ITEMS_GROUP, "Items", items)]]
    if reports:
        groups.append([REPORTS_TYPE, _group(ids.reports_group, REPORTS_GROUP, "Reports",
                                            [[REPORT_TYPE, r] for r in reports])])
    task = {"id": ids.task_id, "name": description["name"], "caption": description["caption"],
            "visible": True, "type": TASK_TYPE,
            # always a module: jam.js's load_task calls back once every
            # module it names has loaded, and never when it names none
            "js_filename": f"{ids.task_id}.js",
            "lookup_lists": {}, "history_item": None, "lock_item": None, "items": groups}
    return {"task": task,
            "settings": {**SETTINGS, "MODIFICATION": ids.modification},
            "locale": LOCALE, "language": LANGUAGE,
            "user_info": {"user_name": session.user_name, "role_name": session.role},
            "privileges": privileges}


def _privileges(granted):
    return {"can_" + p: bool(granted.get(p)) for p in PRIVILEGES}


def _group(group_id, name, caption, children):
    return {"id": group_id, "name": name, "caption": caption, "visible": True,
            "type": ITEMS_TYPE if name == ITEMS_GROUP else REPORTS_TYPE, "js_filename": "",
            "items": children}


def _item(item, name, reports):
    table = bool(item["fields"])
    fields = [_field(1, "id", "ID", "integer", read_only=True)] if table else []
    fields += [_field(i, f["name"], f["caption"], f["type"])
               for i, f in enumerate(item["fields"], start=2)]
    shown = [[f[0], ""] for f in fields[1:]]  # view and edit forms: every field but id
    return {"id": item["id"], "name": name, "caption": item["caption"], "visible": True,
            "type": ITEM_TYPE, "js_filename": f"{item['id']}.js" if item["client_module"] else "",
            "items": [], "fields": fields, "filters": [],
            "reports": [r["id"] for r in reports],
            "default_order": None, "primary_key": "id" if table else None,
            "deleted_flag": None, "master_id": None, "master_rec_id": None,
            "keep_history": False, "edit_lock": False,
            "view_params": shown, "edit_params": shown,
            # jam.js opens an item without a table empty, asking nothing
            "virtual_table": not table, "prototype_ID": None}


def _field(field_id, name, caption, kind, read_only=False, required=False):
    """A field in the order of jam.js's ``field_attr``."""
    data_type = DATA_TYPES.get(kind, TEXT)
    align = ALIGN_RIGHT if data_type in (INTEGER, FLOAT) else ALIGN_LEFT
    return [field_id, name, caption, data_type, 0, required,
            None, None, None, None,             # lookup_item, lookup_field, lookup_field1, 2
            True, read_only, False, None, None,  # edit_visible, read_only, default, default_value, master_field
            align, None, False, False, False,   # alignment, lookup_values, multi_select, *_all, typeahead
            None, None,                         # field_help, field_placeholder
            {"do_not_sanitize": False, "field_mask": "", "textarea": False},
            None, None]                         # field_image, field_file


def _report(ids, item_id, report, owner_name):
    params = [_field(i, p["name"], p["name"].replace("_", " ").capitalize(), "text",
                     required=p["required"])
              for i, p in enumerate(report["parameters"], start=1)]
    return {"id": ids.report_ids[(item_id, report["name"])], "name": report["name"],
            "caption": report["name"].replace("_", " ").capitalize(), "visible": True,
            "type": REPORT_TYPE, "js_filename": "", "items": [], "fields": params,
            "owner_name": owner_name}


def _unique_report_names(reports, taken):
    """jam.js finds a report by its name in its group and on the task: a
    name already taken (by an item, or another item's report) gets its
    item's name in front: ``catalog__price_list``."""
    for report in reports:
        owner = report.pop("owner_name")
        if report["name"] in taken:
            report["name"] = f"{owner}__{report['name']}"
        taken.add(report["name"])
