"""The optional HTTP endpoint: ``/healthz`` and ``/metrics``, served by aiohttp on the bot's
own event loop (off unless SENTIMENT_HTTP_PORT is set; bot/app.py starts it, the bot's
``close()`` stops it).

``/healthz`` answers from the event loop, with no thread of its own: a loop wedged by a
blocking call cannot answer, and a health check with a timeout sees exactly that. Its JSON and
what "healthy" means are in bot/health.py; the status is 200 when healthy, 503 when not.
``/metrics`` is the Prometheus text format (or OpenMetrics, when the scraper asks for it) of
the bot's own registry (bot/metrics.py).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from bot.health import HealthReport

log = logging.getLogger(__name__)

__all__ = ["EndpointError", "HttpEndpoint"]


class EndpointError(Exception):
    """The endpoint cannot listen where the settings say; the message is one line."""


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "no such host or address"
    if exc.errno == errno.EADDRINUSE:
        return "the port is in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the address is not one of this machine's"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return exc.strerror or str(exc)


class HttpEndpoint:
    """``/healthz`` from ``health()``, ``/metrics`` from ``registry``, on ``host``:``port``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        health: Callable[[], HealthReport],
        registry: CollectorRegistry,
    ) -> None:
        self.host = host
        self.port = port
        self._health = health
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", make_aiohttp_handler(registry))
        # On stop, a scraper's open connection gets a second to finish, not aiohttp's 60.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        self._started = False

    async def _healthz(self, request: web.Request) -> web.Response:
        report = self._health()
        return web.json_response(report.body, status=report.status)

    async def start(self) -> None:
        """Listen; raises :class:`EndpointError` (one line naming the setting to change)."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise EndpointError(
                f"cannot serve /healthz and /metrics on {self.host}:{self.port} "
                f"({_reason(exc)}). Set SENTIMENT_HTTP_PORT to a free port (0: no endpoint) "
                "or SENTIMENT_HTTP_HOST to an address of this machine."
            ) from None
        self._started = True
        log.info("serving /healthz and /metrics on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and close open connections. Safe to call more than once."""
        if self._started:
            self._started = False
            await self._runner.cleanup()
