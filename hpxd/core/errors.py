"""The one error table shared by every door.

Every error a client can see is an ``HpxdError`` subclass with a fixed code
and the HTTP status it maps to. Doors turn these into their own wire format
(the TCP door an ``{"code", "msg"}`` object, HTTP doors a status line and a
JSON body); nothing else decides codes. HPX's codes are not HTTP statuses:
406 (permission) is HTTP 403 and 410 (parsing) is HTTP 400, for example.
"""


class HpxdError(Exception):
    code = 100
    title = "unhandled error"
    http_status = 500

    def __init__(self, msg=None):
        self.msg = msg or self.title
        super().__init__(self.msg)

    def as_dict(self):
        return {"code": self.code, "msg": self.msg}


class UnhandledError(HpxdError):
    code, title, http_status = 100, "internal server error", 500


class ApplicationError(HpxdError):
    """Raised by an application function through ``item.error(msg)``."""

    code, title, http_status = 400, "application error", 400


class InvalidMessage(HpxdError):
    code, title, http_status = 403, "invalid message", 400


class FunctionNotFound(HpxdError):
    code, title, http_status = 404, "function not found", 404


class PermissionDenied(HpxdError):
    code, title, http_status = 406, "permission denied", 403


class AuthRequired(HpxdError):
    code, title, http_status = 407, "authentication required", 401


class SessionExpired(HpxdError):
    code, title, http_status = 408, "session expired or unknown", 401


class ParsingError(HpxdError):
    code, title, http_status = 410, "message could not be parsed", 400


class WrongCredentials(HpxdError):
    code, title, http_status = 411, "wrong user name or password", 401


class MissingCredentials(HpxdError):
    code, title, http_status = 412, "missing credentials", 400


class BadArguments(HpxdError):
    code, title, http_status = 413, "bad arguments", 400


class ShuttingDown(HpxdError):
    code, title, http_status = 503, "server is shutting down", 503


class BackendUnavailable(HpxdError):
    code, title, http_status = 504, "shared backend unavailable", 503


class DatabaseUnavailable(HpxdError):
    """The records' database is unreachable, or did not answer within
    ``[database] statement_timeout``."""

    code, title, http_status = 505, "database unavailable", 503


class StaleRecord(ApplicationError):
    """An update whose ``expect_hash`` is not the hash of the record as it
    is now (someone saved it since), or a change to a record that is gone.
    Its own code, so a client knows to load the record again and retry
    (the form door's "conflict")."""

    code, title, http_status = 416, "the record changed since it was read", 409


class NotStreamable(HpxdError):
    """``item.send`` on a door whose calls cannot carry streamed values."""

    code, title, http_status = 414, "this door cannot stream values", 400


class NameTaken(HpxdError):
    """A name that must be unique in the cluster is held by someone else."""

    code, title, http_status = 415, "name already taken", 409


class TooManyGuests(HpxdError):
    """``[sessions] max_guest_sessions`` guest sessions live: no new one
    until some end (a user may still log in)."""

    code, title, http_status = 417, "too many guest sessions", 503


class MethodNotAllowed(HpxdError):
    """A web resource was asked with an HTTP method it does not take (the
    answer's ``Allow`` header names those it does)."""

    code, title, http_status = 418, "method not allowed", 405


class JSONParseError(HpxdError):
    code, title, http_status = 900, "JSON parse error", 400


# code -> class, for docs and tests; codes are unique.
ERROR_TABLE = {cls.code: cls for cls in (
    UnhandledError, ApplicationError, InvalidMessage, FunctionNotFound,
    PermissionDenied, AuthRequired, SessionExpired, ParsingError,
    WrongCredentials, MissingCredentials, BadArguments, ShuttingDown,
    BackendUnavailable, DatabaseUnavailable, NotStreamable, NameTaken, StaleRecord,
    TooManyGuests, MethodNotAllowed, JSONParseError,
)}
