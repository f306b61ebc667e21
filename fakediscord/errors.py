"""The fake's exceptions: a client that died or misbehaved (raised to the test), and the
Discord API error a REST route answers with."""

from __future__ import annotations


class ClientDiedError(RuntimeError):
    """The discord.py client task ended with an exception (it is the ``__cause__``)."""


class StrictModeError(AssertionError):
    """A strict :func:`running_client` saw a problem while the client ran.

    Either discord.py logged an ERROR (that is how it reports an exception in an event
    handler, an app command or a view callback: it logs and carries on, so without this a
    test would only time out), or the client made a request the fake has no route for, or
    the fake itself failed.  Raised by the fake's waits as soon as it happens, and on exit.
    """


class ApiError(Exception):
    """A Discord error answer (``{"message", "code"}`` with an HTTP status) from a route."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message


def not_found(code: int = 10008, message: str = "Unknown Message") -> ApiError:
    return ApiError(404, code, message)


def missing_permissions() -> ApiError:
    return ApiError(403, 50013, "Missing Permissions")
