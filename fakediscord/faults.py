"""Fault injection: answer the next matching requests with a 429, 403, 404 or 5xx shaped like
Discord's, instead of handling them."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from fakediscord.protocol import JSON
from fakediscord.rest.plumbing import json_response

_DEFAULT_ERRORS: Final[dict[int, tuple[int, str]]] = {
    400: (50035, "Invalid Form Body"),
    401: (0, "401: Unauthorized"),
    403: (50013, "Missing Permissions"),
    404: (10008, "Unknown Message"),
    405: (0, "405: Method Not Allowed"),
    413: (40005, "Request entity too large"),
}


@dataclass
class Fault:
    """An injected HTTP failure (see :meth:`FakeDiscord.fail_next`)."""

    method: str
    path_regex: re.Pattern[str]
    status: int
    remaining: int
    retry_after: float | None = None
    json: JSON | None = None
    is_global: bool = False
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and self.method in ("*", method)
            and self.path_regex.search(path) is not None
        )

    def response(self) -> web.Response:
        """Discord's answer for this status (the ``json`` body, if given, replaces it)."""
        if self.status == 429:
            retry = 0.1 if self.retry_after is None else self.retry_after
            body: JSON = {
                "message": "You are being rate limited.",
                "retry_after": retry,
                "global": self.is_global,
            }
            headers = {
                "Retry-After": str(max(1, int(retry + 0.999))),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + retry:.3f}",
                "X-RateLimit-Reset-After": f"{retry:.3f}",
                "X-RateLimit-Bucket": "fake-bucket",
                "X-RateLimit-Scope": "shared" if not self.is_global else "global",
                "Via": "1.1 google",
            }
            if self.is_global:
                headers["X-RateLimit-Global"] = "true"
            return json_response(self.json or body, self.status, headers)
        if self.status >= 500:
            code, message = 0, f"{self.status}: Internal Server Error"
        else:
            code, message = _DEFAULT_ERRORS.get(self.status, (0, f"{self.status}: Error"))
        return json_response(self.json or {"message": message, "code": code}, self.status)


class FaultInjector:
    """The pending faults, consulted before any route handles a request."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        json: JSON | None = None,
        is_global: bool = False,
    ) -> Fault:
        fault = Fault(
            method=method.upper(),
            path_regex=re.compile(path_regex),
            status=status,
            remaining=times,
            retry_after=retry_after,
            json=json,
            is_global=is_global,
        )
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first pending fault matching the request, used up once; None if none does."""
        for fault in self._faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                fault.hits += 1
                return fault
        return None
