"""Connections to the data database."""

from __future__ import annotations

import psycopg

from irt_pipeline.storage.embedded import database_url

APPLICATION_NAME = "irt-pipeline"
CONNECT_TIMEOUT_SECONDS = 10


def connect(url: str | None = None) -> psycopg.Connection:
    """A psycopg 3 connection to ``url`` (default: `database_url()`), in autocommit mode.

    Autocommit keeps a connection from idling inside a transaction between statements (e.g.
    while the engine computes); every write of this package opens its own explicit transaction.
    """
    return psycopg.connect(
        url or database_url(),
        autocommit=True,
        application_name=APPLICATION_NAME,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
    )
