"""Where the database is: a file path (SQLite) or a PostgreSQL address (a DSN).

``SENTIMENT_DB=postgresql://user:password@host:5432/dbname`` (or ``postgres://``; a unix socket
as ``postgresql://user@/dbname?host=/run/postgresql``) selects PostgreSQL; anything else is a
file path. A :class:`Dsn` keeps the address as given for connecting (:meth:`Dsn.reveal`) and
shows it everywhere else (``str``, ``repr``, every message, the operator's statistics) with the
password replaced by ``***``. The password may also come from ``PGPASSWORD`` or ``~/.pgpass``,
as for every PostgreSQL client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit

__all__ = ["SCHEMES", "Dsn", "database_location", "is_dsn"]

SCHEMES: Final = ("postgresql", "postgres")
_FORM: Final = "postgresql://user:password@host:5432/dbname"


def is_dsn(value: str) -> bool:
    """Whether ``value`` is a PostgreSQL address rather than a file path."""
    scheme, sep, _ = value.strip().partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


def _mask(parts: SplitResult) -> str:
    """The address with its password (in the user part or a ``password=`` parameter) as ***."""
    netloc = parts.netloc
    user, at, host = netloc.rpartition("@")
    if at and ":" in user:
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = "&".join(
        f"{quote(k, safe='')}={'***' if k == 'password' else quote(v, safe='/')}"
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


class Dsn:
    """A PostgreSQL address, checked; shown with its password masked."""

    __slots__ = ("_masked", "_raw", "database")

    def __init__(self, value: str) -> None:
        """Raise ValueError (a message without the password) for an address that is not one."""
        raw = value.strip()
        if not is_dsn(raw):
            raise ValueError(f"a PostgreSQL address starts with postgresql://, like {_FORM}")
        try:
            parts = urlsplit(raw)
            masked = _mask(parts)
        except ValueError as exc:
            raise ValueError(
                f"it cannot be read as an address ({exc}); write it as {_FORM}"
            ) from None
        try:
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError:
            raise ValueError(f"its port is not a number in 1-65535 (in {masked})") from None
        query = dict(parse_qsl(parts.query))
        if parts.fragment:
            raise ValueError(f"it has a '#' part, which an address cannot have (in {masked})")
        self._raw = raw
        self._masked = masked
        self.database = parts.path.lstrip("/") or query.get("dbname") or ""

    def reveal(self) -> str:
        """The address as given, password included: only for connecting."""
        return self._raw

    def with_database(self, name: str) -> Dsn:
        """The same server and user, another database."""
        parts = urlsplit(self._raw)
        rest = f"?{parts.query}" if parts.query else ""
        return Dsn(f"{parts.scheme}://{parts.netloc}/{quote(name, safe='')}{rest}")

    def __str__(self) -> str:
        return self._masked

    def __repr__(self) -> str:
        return f"Dsn({self._masked!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dsn) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)


def database_location(value: str | Path | Dsn) -> Path | Dsn:
    """A Dsn for a PostgreSQL address (ValueError if malformed), else the path, ``~``
    expanded."""
    if isinstance(value, Dsn):
        return value
    if isinstance(value, str) and is_dsn(value):
        return Dsn(value)
    return Path(value).expanduser()
