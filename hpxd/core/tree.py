"""The task tree as one session sees it: what a door renders for its
client (Jam.py's ``load``, the form door, the console).

``describe(node, session)`` returns plain JSON::

    {"id": 1, "name": "demo", "caption": "Demo",
     "items": [                       # every item below the task, parents first
        {"id": 2, "name": "catalog", "path": "catalog", "caption": "Catalog",
         "parent": 1,                 # the parent's id (the task's for a top item)
         "children": [3, ...],        # ids of its child items, in declaration order
         "fields": [{"name": "name", "type": "text", "caption": "Name"}, ...],
                                      # [] for an item without a table
         "functions": [...],          # Function.describe() of those it may call
         "reports": [{"name": "price_list", "requires": "view", "doc": "...",
                      "parameters": [{"name": "currency", "required": true}]}],
                                      # those it may run
         "privileges": {"view": true, "create": false, "edit": false, "delete": false},
         "client_module": false,      # true: the app attached a browser module
         "uploads": [".pdf"] or null,
         "forms": [...]},             # Form.describe() of its forms (hpxd.core.forms)
        ...],
     "functions": [...], "privileges": {...}, "client_module": false}  # the task's own

Nothing the session may not see is hidden from the shape (every item is
listed, with its privileges), but functions and reports it may not run are
left out.
"""

from hpxd.core.auth import PRIVILEGES


def describe(node, session):
    task = node.task
    can = _can(node, session)
    out = {"id": task.id, "name": task.name, "caption": task.caption,
           **_common(task, can), "items": []}
    for item in _below(task):
        out["items"].append({
            "id": item.id, "name": item.name, "path": item.path, "caption": item.caption,
            "parent": item.parent.id,
            "fields": [{"name": name, "type": kind, "caption": _caption(name)}
                       for name, kind in item.fields.items()],
            "forms": [form.describe() for form in item.forms.values()],
            **_common(item, can),
        })
    return out


def _common(item, can):
    return {
        "children": [child.id for child in item.children.values()],
        "functions": [f.describe() for f in item.functions.values()
                      if can(item, f.requires)],
        "reports": [_report(r) for r in item.reports.values() if can(item, r.requires)],
        "privileges": {p: can(item, p) for p in PRIVILEGES},
        "client_module": item.client_module_path is not None,
        "uploads": sorted(item.upload_extensions) if item.upload_extensions else None,
    }


def _report(report):
    described = report.describe()
    return {"name": report.name, "requires": report.requires, "doc": described["doc"],
            "parameters": described["parameters"]}


def _can(node, session):
    auth, user_info = node.auth, session.user_info
    return lambda item, privilege: auth.can(user_info, item.privilege_key, privilege)


def _below(item):
    """Every item under ``item``, each before its children, in declaration order."""
    for child in item.children.values():
        yield child
        yield from _below(child)


def _caption(name):
    return name.replace("_", " ").capitalize()
