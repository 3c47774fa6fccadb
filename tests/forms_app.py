"""An app for the form door's tests (tests/test_forms_api.py): one table,
forms on it with each lock mode, a rule, a file field, a table view, and a
second table whose view no drag of the first may reach."""

import os

from hpxd.app import FormField, Task

task = Task("formsapp")
# The download tests' files (tests/test_forms_api.py makes the directory).
FILES = os.environ.get("HPXD_TEST_FORMS_FILES")
if FILES:
    task.download_root("files", FILES)

tags = task.item("tags", fields={"name": "text"})
notes = task.item("notes", fields={
    "title": "text", "body": "text", "size": "integer", "done": "boolean",
    "due": "date", "kind": "text", "tag": "text", "attachment": "text", "position": "integer"})
notes.uploads(["txt", "png"])

note = notes.form("note", [
    FormField("title", required=True, max_length=50),
    "body",
    FormField("size", min=0, max=10),
    "done",
    "due",
    FormField("kind", "select", options=["plain", "urgent"]),
    FormField("tag", typeahead=("tags", "name")),
    FormField("attachment", "file"),
], lock="exclusive", close_url="/forms/note-list")
note.download("attachment", field="attachment")
note.download("attachment_text", field="attachment", output="json")
note.download("thumb", "thumbnail", field="attachment", width=20)
note.download("export", "excel", filename="notes.xlsx")
if FILES:
    note.download("log", "monitor", path="files:app.log", tail=3)
    note.download("pdfs", "pdf", paths=["files:a.pdf", "files:b.pdf"], filename="both.pdf")
    note.download("bundle", "zip", paths=["files:a.pdf", "files:app.log"])
    note.download("any", client_path="files")
note.table_view("note-list", ["title", "size"], order_field="position", caption="Notes")

memo = notes.form("memo", ["title", "body"], lock="advisory")
free = notes.form("free", ["title"], lock="none")

others = task.item("others", fields={"title": "text", "position": "integer"})
other = others.form("other", ["title"])
other.table_view("other-list", ["title"], order_field="position")


@note.rule
def body_while_open(values):
    """A done note's body is hidden; the summary element counts its title."""
    return {"body": {"hidden": bool(values.get("done"))},
            "#summary": {"content": f"{len(values.get('title') or '')} characters"}}


@task.process("add_tags")
async def add_tags(ctx):
    tags = ctx.records("tags")
    if await tags.count() == 0:
        await tags.apply(insert=[{"name": f"tag{n:02d}"} for n in range(30)]
                         + [{"name": "Switzerland"}])
