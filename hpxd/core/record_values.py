"""The field types of table-backed items: each one's SQL column type, how a
value from a client is checked before it reaches SQL, and how a value read
back is handed out.

A value goes in and comes out the same on SQLite and PostgreSQL: integers
are 64-bit, reals are doubles, dates and datetimes travel as ISO 8601
strings ("2024-01-05", "2024-01-05T10:00:00.250000"). Datetimes carry no
time zone: one given with an offset ("...Z", "...+02:00") is stored as the
same instant in UTC.
"""

import datetime
import math

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Double, Text

INTEGER_RANGE = (-2 ** 63, 2 ** 63 - 1)  # BIGINT on PostgreSQL, INTEGER on SQLite


def _text_column():
    # PostgreSQL compares and sorts text by the database's locale, SQLite by
    # code point: the "C" collation makes PostgreSQL agree with SQLite (and
    # makes ILIKE fold ASCII letters only, as SQLite's LIKE does).
    return Text().with_variant(Text(collation="C"), "postgresql")


def _text(value):
    if type(value) is not str:
        raise ValueError("a string")
    if "\x00" in value:  # PostgreSQL refuses NUL in text; refuse it on both
        raise ValueError("a string without NUL characters")
    return value


def _integer(value):
    if type(value) is not int or not INTEGER_RANGE[0] <= value <= INTEGER_RANGE[1]:
        raise ValueError("an integer of 64 bits")
    return value


def _real(value):
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError("a finite number")
    return float(value)


def _boolean(value):
    if type(value) is not bool:
        raise ValueError("true or false")
    return value


def _date(value):
    if type(value) is datetime.date:  # from Python code
        return value
    if type(value) is str and len(value) <= 10:  # a datetime is not a date
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError('an ISO date string like "2024-01-05"')


def _datetime(value):
    if type(value) is str:
        try:
            value = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError('an ISO datetime string like "2024-01-05T10:00:00"') from None
    if type(value) is not datetime.datetime:
        raise ValueError('an ISO datetime string like "2024-01-05T10:00:00"')
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


def _iso(value):
    return None if value is None else value.isoformat()


class FieldType:
    """One field type: ``column()`` makes its SQLAlchemy type, ``check(v)``
    returns the value to bind or raises ValueError naming what it wants,
    ``give_out`` (None: as read) turns a value read back into JSON."""

    __slots__ = ("name", "column", "check", "give_out")

    def __init__(self, name, column, check, give_out=None):
        self.name, self.column, self.check, self.give_out = name, column, check, give_out


TYPES = {t.name: t for t in (
    FieldType("text", _text_column, _text),
    FieldType("integer", BigInteger, _integer),
    FieldType("real", Double, _real),
    FieldType("boolean", Boolean, _boolean),
    FieldType("date", Date, _date, _iso),
    FieldType("datetime", DateTime, _datetime, _iso),
)}
