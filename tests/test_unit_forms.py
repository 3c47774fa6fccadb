"""hpxd/core/forms.py (public as hpxd.app.Form, FormField): declaring forms,
validating their values, their rules' form-update / element-update, describe()."""

import datetime
import json
from types import SimpleNamespace

import pytest
from twisted.logger import globalLogPublisher

from hpxd import app as public
from hpxd.core import errors, tree
from hpxd.core.app import Task
from hpxd.core.forms import MAX_LENGTH, Form, FormField
from hpxd.core.record_values import TYPES

FIELDS = {"name": "text", "notes": "text", "age": "integer", "price": "real",
          "born": "date", "seen": "datetime", "member": "boolean", "colour": "text",
          "size": "integer", "country": "text", "country_id": "integer", "avatar": "text"}


def make_task():
    task = Task("demo")
    task.item("countries", fields={"name": "text", "code": "integer"})
    task.item("things", fields=dict(FIELDS))
    return task


def things(task=None):
    return (task or make_task()).item_by_name("things")


def every_kind(task=None):
    """A form with one field of each kind."""
    return things(task).form("thing", [
        FormField("name", required=True),
        FormField("notes", "textarea"),
        "age",
        "price",
        "born",
        "member",
        FormField("colour", "radio", options=["red", ("green", "Green!")]),
        FormField("size", "select", options=[(1, "small"), (2, "large")]),
        FormField("country_id", "select", options_from=("countries", "name")),
        FormField("country", typeahead=("countries", "name")),
        FormField("avatar", "file"),
    ], lock="advisory")


def capture_log():
    events = []
    globalLogPublisher.addObserver(events.append)
    return events, lambda: globalLogPublisher.removeObserver(events.append)


# -- declaration ---------------------------------------------------------------------


def test_public_api_exports_form_and_form_field():
    assert public.Form is Form and public.FormField is FormField


def test_a_form_is_declared_on_its_item_and_found_by_name_in_the_task():
    task = make_task()
    form = every_kind(task)
    assert things(task).forms == {"thing": form}
    assert task.form_by_name("thing") is form and task.form_by_name("nope") is None
    assert form.lock == "advisory" and form.item is things(task)
    assert [f.kind for f in form.fields.values()] == [
        "text", "textarea", "number", "number", "date", "checkbox", "radio", "select",
        "select", "text", "file"]


def test_a_form_field_belongs_to_one_form():
    task = make_task()
    name = FormField("name")
    things(task).form("f", [name])
    with pytest.raises(ValueError, match="in another form already"):
        things(task).form("g", [name])


def test_lock_defaults_to_exclusive():
    assert things().form("f", ["name"]).lock == "exclusive"


@pytest.mark.parametrize("fields, kwargs, message", [
    (["nope"], {}, "'nope' is not a field of item 'things'"),
    ([FormField(3)], {}, "3 is not a field of item 'things'"),
    ([FormField("name", "slider")], {}, "kind must be one of"),
    ([FormField("age", "text")], {}, "a text edits a field of type text, not integer"),
    (["seen"], {}, "a datetime field has no form kind"),
    ([FormField("name", pattern="(unclosed")], {}, "bad pattern"),
    ([FormField("age", pattern="x")], {}, "pattern and max_length check text"),
    ([FormField("name", min=1)], {}, "min and max bound a number or a date"),
    ([FormField("age", min="ten")], {}, "min 'ten' must be a whole number"),
    ([FormField("born", max="2024-13-01")], {}, "max '2024-13-01' must be a date"),
    ([FormField("name", max_length=0)], {}, "max_length must be a whole number > 0"),
    ([FormField("age", min=10, max=1)], {}, "min 10 is more than max 1"),
    ("name", {}, "fields must be a list"),
    (["name", "name"], {}, "field 'name' is listed twice"),
    ([], {}, "needs at least one field"),
    ([42], {}, "fields are FormField objects or field names"),
    ([FormField("colour", "radio")], {}, "needs options or options_from"),
    ([FormField("colour", "select", options=["a"], options_from=("countries", "name"))], {},
     "needs options or options_from"),
    ([FormField("name", options=["a"])], {}, "options belong to a radio or a select"),
    ([FormField("size", "select", options=["small"])], {}, "option 'small' is not a integer"),
    ([FormField("colour", "select", options=["a", "a"])], {}, "options repeat a value"),
    ([FormField("colour", "select", options_from=("nowhere", "name"))], {},
     "names 'nowhere', which is not a table-backed item declared before this form"),
    ([FormField("colour", "select", options_from=("countries", "nope"))], {},
     "item 'countries' has no field 'nope'"),
    ([FormField("colour", "select", options_from=("countries", "code"))], {},
     "this field stores it, so it must be text"),
    ([FormField("colour", "select", options_from="countries.name")], {},
     "options_from must be (item path, field name)"),
    ([FormField("notes", "textarea", typeahead=("countries", "name"))], {},
     "typeahead suggests values of a text"),
    ([FormField("name", check="not a function")], {}, "check must be a function"),
    ([FormField("name", required="yes")], {}, "required true or false"),
    (["name"], {"lock": "pessimistic"}, "lock must be one of"),
])
def test_declaration_errors_say_what_is_wrong(fields, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        things().form("f", fields, **kwargs)


def test_form_names_are_identifiers_unique_in_the_task_and_need_a_table():
    task = make_task()
    things(task).form("f", ["name"])
    with pytest.raises(ValueError, match="the task already has a form or table view 'f'"):
        task.item_by_name("countries").form("f", ["name"])
    with pytest.raises(ValueError, match="must be a Python identifier"):
        things(task).form("no-dashes", ["name"])
    with pytest.raises(ValueError, match="item 'plain' has no table"):
        task.item("plain").form("g", ["name"])
    assert list(task.item_by_name("countries").forms) == []


def test_a_validator_must_name_a_field_of_the_form():
    form = things().form("f", ["name"])
    with pytest.raises(ValueError, match="form 'f' has no field 'age'"):
        form.validator("age")


# -- validate ------------------------------------------------------------------------


def test_valid_values_come_back_typed_as_the_records_layer_takes_them():
    form = every_kind()
    clean = form.validate({
        "name": "Ada", "notes": "line\nline", "age": "36", "price": "9.5",
        "born": "1815-12-10", "member": "on", "colour": "green", "size": "2",
        "country_id": "7", "country": "Switzerland", "avatar": "Zx_9-abc"})
    assert clean == {"name": "Ada", "notes": "line\nline", "age": 36, "price": 9.5,
                     "born": "1815-12-10", "member": True, "colour": "green", "size": 2,
                     "country_id": 7, "country": "Switzerland", "avatar": "Zx_9-abc"}
    for name, value in clean.items():  # what the records layer takes

        TYPES[FIELDS[name]].check(value)


def test_json_typed_values_are_taken_as_they_are():
    form = every_kind()
    clean = form.validate({"name": "Ada", "age": 36, "price": 3, "member": False,
                           "born": datetime.date(2024, 1, 5), "size": 1})
    assert (clean["age"], clean["price"], clean["member"], clean["born"], clean["size"]) == (
        36, 3.0, False, "2024-01-05", 1)


def test_absent_and_empty_values_are_empty_of_their_kind():
    clean = every_kind().validate({"name": "Ada", "age": "", "member": ""})
    assert clean == {"name": "Ada", "notes": "", "age": None, "price": None, "born": None,
                     "member": False, "colour": None, "size": None, "country_id": None,
                     "country": "", "avatar": None}


@pytest.mark.parametrize("field, value, message", [
    ("name", 5, "Name must be text"),
    ("name", "a\x00b", "Name must not contain NUL characters"),
    ("age", "3.5", "Age must be a whole number"),
    ("age", True, "Age must be a whole number"),
    ("age", 2 ** 63, "Age must be a whole number"),
    ("price", "cheap", "Price must be a number"),
    ("price", "nan", "Price must be a number"),
    ("price", [1], "Price must be a number"),
    ("price", "1_0", "Price must be a number"),
    ("price", "inf", "Price must be a number"),
    ("age", "\u0663", "Age must be a whole number"),  # an Arabic-Indic three
    ("born", "2024-W01-1", "Born must be a date like 2024-01-05"),
    ("born", "2024-02-30", "Born must be a date like 2024-01-05"),
    ("born", "2024-01-05T10:00", "Born must be a date like 2024-01-05"),
    ("member", "maybe", "Member must be ticked or not (true or false)"),
    ("colour", "blue", "Colour must be one of the choices"),
    ("size", "3", "Size must be one of the choices"),
    ("country_id", "seven", "Country id must be a whole number"),
    ("avatar", "../etc/passwd", "Avatar must be the id of an uploaded file"),
    ("notes", {"x": 1}, "Notes must be text"),
])
def test_a_value_of_the_wrong_type_is_an_error_naming_the_field(field, value, message):
    assert every_kind().validate({"name": "Ada", field: value}) == [(field, message)]


def test_unknown_fields_are_errors_and_a_flood_of_them_is_cut_short():
    form = every_kind()
    assert form.validate({"name": "Ada", "id": 3, "isAdmin": True}) == [
        ("id", "is not a field of this form"), ("isAdmin", "is not a field of this form")]
    many = form.validate({f"x{i}": 1 for i in range(1000)} | {"y" * 500: 1})
    assert len(many) == 10
    assert form.validate(["name"]) == [("", "the form's values must be an object of field "
                                            "values")]


def test_huge_values_are_refused_before_anything_else_looks_at_them():
    form = every_kind()
    assert form.validate({"name": "x" * MAX_LENGTH})["name"] == "x" * MAX_LENGTH
    assert form.validate({"name": "x" * (MAX_LENGTH + 1)}) == [
        ("name", f"Name is longer than {MAX_LENGTH} characters")]
    assert form.validate({"name": "A", "age": "9" * 5000}) == [
        ("age", "Age is longer than 100 characters")]


def test_max_length_of_a_field():
    form = things().form("f", [FormField("name", max_length=3)])
    assert form.validate({"name": "abc"}) == {"name": "abc"}
    assert form.validate({"name": "abcd"}) == [("name", "Name is longer than 3 characters")]


def test_required_fields_must_have_a_value_and_a_required_checkbox_be_ticked():
    form = things().form("f", [FormField("name", required=True, label="Your name"),
                               FormField("member", required=True)])
    assert form.validate({"member": "on"}) == [("name", "Your name is required")]
    assert form.validate({"name": "   ", "member": True}) == [("name", "Your name is required")]
    assert form.validate({"name": "Ada"}) == [("member", "Member is required")]
    assert form.validate({"name": "Ada", "member": True}) == {"name": "Ada", "member": True}


def test_range_of_numbers_and_dates():
    form = things().form("f", [FormField("age", min=0, max=150),
                               FormField("price", min=0.5, max=10),
                               FormField("born", min="1900-01-01",
                                         max=datetime.date(2024, 12, 31))])
    assert form.validate({"age": "150", "price": "0.5", "born": "1900-01-01"}) == {
        "age": 150, "price": 0.5, "born": "1900-01-01"}
    assert form.validate({"age": "-1", "price": "0.1", "born": "2025-01-01"}) == [
        ("age", "Age must be at least 0"), ("price", "Price must be at least 0.5"),
        ("born", "Born must be at most 2024-12-31")]
    assert form.validate({"age": 151, "price": 11}) == [
        ("age", "Age must be at most 150"), ("price", "Price must be at most 10")]


def test_a_pattern_must_match_the_whole_value():
    form = things().form("f", [
        FormField("name", pattern=r"[a-z]+"),
        FormField("notes", pattern=r"[^@\s]+@[^@\s]+", pattern_message="is not an address")])
    assert form.validate({"name": "abc", "notes": "a@b"}) == {"name": "abc", "notes": "a@b"}
    assert form.validate({"name": "abc1", "notes": "x a@b"}) == [
        ("name", "Name is not in the expected form"), ("notes", "Notes is not an address")]
    assert form.validate({"name": "", "notes": ""}) == {"name": "", "notes": ""}  # not required


def test_function_validators_see_the_value_and_every_clean_value():
    seen = []

    def not_older_than_born(value, values):
        seen.append((value, values))
        return "is not possible" if value > 2024 - int(values["born"][:4]) else None

    form = things().form("f", ["born", FormField("age", check=not_older_than_born)])

    @form.validator("age")
    def even(value, values):
        return None if value % 2 == 0 else "must be even"

    assert form.validate({"born": "2000-01-01", "age": "24"}) == {"born": "2000-01-01",
                                                                   "age": 24}
    assert seen == [(24, {"born": "2000-01-01", "age": 24})]
    assert form.validate({"born": "2000-01-01", "age": "30"}) == [("age", "Age is not possible")]
    assert form.validate({"born": "2000-01-01", "age": "23"}) == [("age", "Age must be even")]
    assert form.validate({"born": "2000-01-01", "age": ""}) == {"born": "2000-01-01",
                                                                 "age": None}


def test_choices_the_door_fetched_bound_a_select_from_records():
    form = every_kind()
    assert form.validate({"name": "A", "country_id": "3"}, choices={"country_id": {1, 3}})[
        "country_id"] == 3
    assert form.validate({"name": "A", "country_id": "2"}, choices={"country_id": {1, 3}}) == [
        ("country_id", "Country id must be one of the choices")]


def test_rules_make_fields_required_or_not_and_disabled_fields_are_not_saved():
    form = things().form("f", ["member", "name", FormField("notes", required=True), "age"])

    @form.rule
    def name_for_members(values):
        return {"name": {"required": values["member"]},
                "notes": {"hidden": not values["member"]},
                "age": {"disabled": not values["member"]}}

    assert form.validate({"member": "on"}) == [("name", "Name is required"),
                                              ("notes", "Notes is required")]
    # not a member: notes hidden (so not required), age disabled (left out, kept as it is)
    assert form.validate({"age": "12"}) == {"member": False, "name": "", "notes": ""}
    assert form.validate({"member": True, "name": "A", "notes": "n", "age": 3}) == {
        "member": True, "name": "A", "notes": "n", "age": 3}


# -- rules: evaluate -----------------------------------------------------------------


def contact_form():
    task = Task("demo")
    contacts = task.item("contacts", fields={"name": "text", "has_company": "boolean",
                                             "company": "text", "size": "integer"})
    form = contacts.form("contact", [FormField("name", required=True), "has_company",
                                     "company",
                                     FormField("size", "select", options=[1, 2])])

    @form.rule
    def company_when_ticked(values):
        return {"company": {"hidden": not values["has_company"],
                            "required": values["has_company"]}}

    @form.rule
    def summary(values):
        return {"#summary": {"content": f"{values['name'] or 'nobody'}",
                             "attr": {"class": "ok", "title": None}},
                "size": {"value": [{"value": 1, "text": "one", "selected": True},
                                   {"value": 2}]}}

    return form


def test_evaluate_answers_in_the_seeds_form_update_and_element_update_shapes():
    answer = contact_form().evaluate({"name": "Ada", "has_company": "on"})
    assert answer == {
        "form-update": [
            {"form-element": "name", "hidden": False, "disabled": False, "required": True},
            {"form-element": "has_company", "hidden": False, "disabled": False,
             "required": False},
            {"form-element": "company", "hidden": False, "disabled": False, "required": True},
            {"form-element": "size", "hidden": False, "disabled": False, "required": False,
             "value": [{"value": 1, "text": "one", "selected": True}, {"value": 2}]},
        ],
        "element-update": {"summary": {"content": "Ada",
                                       "attr": {"class": "ok", "title": None}}},
    }
    assert json.loads(json.dumps(answer)) == answer


def test_unticking_the_checkbox_hides_the_field_and_rules_see_typed_values():
    answer = contact_form().evaluate({"has_company": ""})
    company = answer["form-update"][2]
    assert company == {"form-element": "company", "hidden": True, "disabled": False,
                       "required": False}
    assert answer["element-update"]["summary"]["content"] == "nobody"


def test_later_rules_win_and_a_rule_may_set_values_and_answer_nothing():
    task = make_task()
    form = things(task).form("f", ["name", "born"])
    form.rule(lambda values: {"name": {"hidden": True, "value": "x"}, "#a": {"content": "1"}})
    form.rule(lambda values: {"name": {"hidden": False}, "born": {"value":
                                                                  datetime.date(2024, 1, 5)},
                              "#a": {"attr": {"k": "v"}}})
    form.rule(lambda values: None)
    answer = form.evaluate({})
    assert answer["form-update"] == [
        {"form-element": "name", "hidden": False, "disabled": False, "required": False,
         "value": "x"},
        {"form-element": "born", "hidden": False, "disabled": False, "required": False,
         "value": "2024-01-05"}]
    assert answer["element-update"] == {"a": {"content": "1", "attr": {"k": "v"}}}


def test_rules_see_none_where_a_value_does_not_convert():
    seen = []
    form = things().form("f", ["age", "member"])
    form.rule(lambda values: seen.append(values))
    form.evaluate({"age": "12a", "member": "on"})
    assert seen == [{"age": None, "member": True}]


def test_evaluate_refuses_values_that_are_not_the_forms():
    form = contact_form()
    with pytest.raises(errors.BadArguments, match="no field isAdmin"):
        form.evaluate({"isAdmin": "1"})
    with pytest.raises(errors.BadArguments, match="values must be an object"):
        form.evaluate("name=x")


def bad_rules():
    def raises(values):
        raise KeyError("secret database text")

    return [
        raises,
        lambda values: ["not", "a", "dict"],
        lambda values: {"nope": {"hidden": True}},
        lambda values: {"name": {"hidden": "yes"}},
        lambda values: {"name": {"colour": "red"}},
        lambda values: {"name": {"value": object()}},
        lambda values: {"#el": {"attr": {"class": 3}}},
        lambda values: {"#el": {"style": "x"}},
    ]


@pytest.mark.parametrize("index", range(len(bad_rules())))
def test_a_rule_that_raises_or_answers_nonsense_is_logged_and_the_caller_gets_error_100(index):
    form = things().form("f", ["name"])
    form.rule(bad_rules()[index])
    events, stop = capture_log()
    try:
        with pytest.raises(errors.UnhandledError) as caught:
            form.evaluate({"name": "x"})
        with pytest.raises(errors.UnhandledError):
            form.validate({"name": "x"})
    finally:
        stop()
    assert caught.value.code == 100
    assert caught.value.msg == "form f: the app failed to check these values"
    assert "secret" not in caught.value.msg and caught.value.__cause__ is None
    failures = [e for e in events if e.get("log_failure") is not None]
    assert len(failures) == 2 and failures[0]["form"] == "f"


def test_a_validator_that_raises_or_returns_nonsense_is_logged_and_gives_error_100():
    form = things().form("f", ["name", "age"])
    form.validator("name")(lambda value, values: 1 / 0)
    form.validator("age")(lambda value, values: 42)
    events, stop = capture_log()
    try:
        with pytest.raises(errors.UnhandledError):
            form.validate({"name": "x"})
        with pytest.raises(errors.UnhandledError):
            form.validate({"age": "1"})
    finally:
        stop()
    assert len([e for e in events if e.get("log_failure") is not None]) == 2


# -- describe ------------------------------------------------------------------------


def test_describe_is_plain_json_of_fields_kinds_labels_options_and_lock():
    task = make_task()
    form = things(task).form("thing", [
        FormField("name", required=True, label="Full name", pattern="[A-Z].*", max_length=80),
        FormField("born", min="1900-01-01"),
        FormField("size", "select", options=[(1, "small"), 2]),
        FormField("country_id", "radio", options_from=("countries", "name")),
        FormField("colour", "select", options_from=("countries", "name")),
        FormField("country", typeahead=("countries", "name")),
        FormField("avatar", "file"),
    ], lock="none", caption="A thing")
    form.rule(lambda values: None)
    described = form.describe()
    assert json.loads(json.dumps(described)) == described
    assert {k: described[k] for k in ("name", "caption", "item", "item_id", "lock",
                                      "rules")} == {
        "name": "thing", "caption": "A thing", "item": "things",
        "item_id": things(task).id, "lock": "none", "rules": True}
    name, born, size, country_id, colour, country, avatar = described["fields"]
    assert name == {"name": "name", "kind": "text", "type": "text", "label": "Full name",
                    "required": True, "min": None, "max": None, "pattern": "[A-Z].*",
                    "max_length": 80, "options": None, "options_from": None,
                    "typeahead": None}
    assert (born["kind"], born["min"], born["max"], born["max_length"]) == (
        "date", "1900-01-01", None, None)
    assert size["options"] == [{"value": 1, "text": "small"}, {"value": 2, "text": "2"}]
    assert country_id["options_from"] == {"item": "countries", "show": "name", "key": "id"}
    assert colour["options_from"] == {"item": "countries", "show": "name", "key": "name"}
    assert country["typeahead"] == {"item": "countries", "show": "name", "key": "name"}
    assert (avatar["kind"], avatar["type"]) == ("file", "text")


def test_tree_describe_lists_each_items_forms():
    task = make_task()
    form = every_kind(task)
    node = SimpleNamespace(task=task, auth=SimpleNamespace(
        can=lambda user_info, key, privilege: privilege == "view"))
    described = tree.describe(node, SimpleNamespace(user_info={"role": "viewer"}))
    countries, things_entry = described["items"]
    assert countries["forms"] == []
    assert things_entry["forms"] == [form.describe()]
    assert "forms" not in described  # the task has no table, so no forms
