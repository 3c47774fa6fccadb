"""The one error table shared by every door.

Every error a client can see is an ``HpxdError`` subclass with a fixed code.
Doors turn these into their own wire format; nothing else decides codes.
"""


class HpxdError(Exception):
    code = 100
    title = "unhandled error"

    def __init__(self, msg=None):
        self.msg = msg or self.title
        super().__init__(self.msg)

    def as_dict(self):
        return {"code": self.code, "msg": self.msg}


class UnhandledError(HpxdError):
    code, title = 100, "internal server error"


class ApplicationError(HpxdError):
    """Raised by an application function through ``item.error(msg)``."""

    code, title = 400, "application error"


class InvalidMessage(HpxdError):
    code, title = 403, "invalid message"


class FunctionNotFound(HpxdError):
    code, title = 404, "function not found"


class PermissionDenied(HpxdError):
    code, title = 406, "permission denied"


class AuthRequired(HpxdError):
    code, title = 407, "authentication required"


class SessionExpired(HpxdError):
    code, title = 408, "session expired or unknown"


class ParsingError(HpxdError):
    code, title = 410, "message could not be parsed"


class WrongCredentials(HpxdError):
    code, title = 411, "wrong user name or password"


class MissingCredentials(HpxdError):
    code, title = 412, "missing credentials"


class BadArguments(HpxdError):
    code, title = 413, "bad arguments"


class ShuttingDown(HpxdError):
    code, title = 503, "server is shutting down"


class BackendUnavailable(HpxdError):
    code, title = 504, "shared backend unavailable"


class JSONParseError(HpxdError):
    code, title = 900, "JSON parse error"


# code -> class, for docs and tests; codes are unique.
ERROR_TABLE = {cls.code: cls for cls in (
    UnhandledError, ApplicationError, InvalidMessage, FunctionNotFound,
    PermissionDenied, AuthRequired, SessionExpired, ParsingError,
    WrongCredentials, MissingCredentials, BadArguments, ShuttingDown,
    BackendUnavailable, JSONParseError,
)}
