"""The transaction helper shared by the writers of this package."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.pq import TransactionStatus


@contextmanager
def committed_transaction(conn: psycopg.Connection) -> Iterator[None]:
    """Run the block in a transaction of its own, committed when the block succeeds.

    On a non-autocommit connection, a transaction left open by earlier statements is committed
    first, so that the block is never a mere savepoint that the caller might still roll back.
    """
    if conn.info.transaction_status == TransactionStatus.INTRANS:
        conn.commit()
    with conn.transaction():
        yield
