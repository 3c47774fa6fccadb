"""docs/errors.md documents every code of the one error table."""

from pathlib import Path

import pytest

from hpxd.core.errors import ERROR_TABLE

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


@pytest.mark.parametrize("code", sorted(ERROR_TABLE))
def test_every_error_code_is_documented(code):
    text = DOC.read_text()
    cls = ERROR_TABLE[code]
    row = next((line for line in text.splitlines() if line.startswith(f"| {code} |")), None)
    assert row is not None, f"docs/errors.md has no table row for code {code}"
    assert f"`{cls.__name__}`" in row, f"row {code} does not name {cls.__name__}"
    assert cls.title in row, f"row {code} does not give the title {cls.title!r}"


def test_no_undocumented_extra_codes():
    """Every row of the table is a real code."""
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| ")
            and line.split("|")[1].strip().isdigit()]
    assert {int(r.split("|")[1]) for r in rows} == set(ERROR_TABLE)


@pytest.mark.parametrize("code", sorted(ERROR_TABLE))
def test_the_http_column_is_the_status_each_code_maps_to(code):
    row = next(line for line in DOC.read_text().splitlines() if line.startswith(f"| {code} |"))
    assert row.split("|")[4].strip() == str(ERROR_TABLE[code].http_status)


def test_only_server_faults_map_to_5xx():
    # 417: the server is full of guests, no fault of the client that asks.
    for code, cls in ERROR_TABLE.items():
        assert 400 <= cls.http_status < 600
        assert (cls.http_status >= 500) == (code in (100, 417, 503, 504, 505)), code
