"""Connections to the data database."""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from irt_pipeline.storage.embedded import database_url

APPLICATION_NAME = "irt-pipeline"
CONNECT_TIMEOUT_SECONDS = 10


class InvalidDatabaseUrl(psycopg.ProgrammingError):
    """The connection URL cannot be parsed; the message shows it masked, never the password."""


def connect(url: str | None = None) -> psycopg.Connection:
    """A psycopg 3 connection to ``url`` (default: `database_url()`), in autocommit mode.

    Autocommit keeps a connection from idling inside a transaction between statements (e.g.
    while the engine computes); every write of this package opens its own explicit transaction.

    A URL that cannot be parsed raises `InvalidDatabaseUrl` with the URL masked and a generic
    reason: psycopg's own message quotes the offending part, e.g. a password with an unescaped
    ``%`` (``invalid percent-encoded token: "<password>"``), and would carry it into the CLI's
    output and Dagster's step errors. A connection error that quotes the password is re-raised
    with it masked. Both are raised outside the ``except`` block, so no chained exception (which
    Dagster serialises too) holds the original text.
    """
    target = url or database_url()
    try:
        conninfo_to_dict(target)
        parsed = True
    except psycopg.Error:
        parsed = False
    if not parsed:
        raise InvalidDatabaseUrl(
            f"invalid database URL {mask_database_url(target)}: it cannot be parsed as a PostgreSQL "
            "connection URI (percent-encode special characters of the password, e.g. % as %25)"
        )
    try:
        return psycopg.connect(
            target,
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except psycopg.Error as exc:
        secret = conninfo_to_dict(target).get("password")
        if not secret or secret not in str(exc):
            raise
        failure = type(exc), str(exc).replace(secret, "***")
    raise failure[0](failure[1])


def mask_database_url(url: str) -> str:
    """The connection target without its password: `describe_database` (the CLI's masking) for
    a URL psycopg can parse; for one it cannot, scheme, user and host part only."""
    try:
        from irt_pipeline.storage.commands import describe_database  # here: commands imports this module

        return describe_database(url)
    except Exception:  # noqa: BLE001 - unparseable: mask by hand below
        pass
    match = re.match(r"(?s)^([A-Za-z][A-Za-z0-9+.-]*://)(.*)$", url)
    if not match:
        return "<unparseable connection string>"
    scheme, rest = match.groups()
    userinfo, at, host_part = rest.rpartition("@")  # the last @: a password may hold an unescaped one
    if not at:
        userinfo, host_part = "", rest
    user = userinfo.split(":", 1)[0]
    credentials = (f"{user}:***@" if ":" in userinfo else f"{user}@") if at else ""
    # the query may hold password=...; the user part never holds the password
    return f"{scheme}{credentials}{host_part.split('?', 1)[0]}"
