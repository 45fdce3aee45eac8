"""The data database (PostgreSQL / Supabase) as a Dagster resource.

`IrtDatabase` is a thin shell over `irt_pipeline.storage`: every method opens one psycopg 3
connection, calls one storage function and closes the connection, so the assets, the failure
hook and the failure sensor share the same code paths and tests can bind
``IrtDatabase(url=database_url)`` to a scratch database.

The exception is the connection of `start_run`: it holds the run's lease and stays open
(storage/leases.py) until the run is published or failed, or the process exits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import dagster as dg
import pandas as pd
import psycopg
from pydantic import Field

from irt_pipeline import storage
from irt_pipeline.models import IrtItemParameters
from irt_pipeline.storage import leases
from irt_pipeline.storage.attempts import BankSnapshot, read_bank_snapshot
from irt_pipeline.storage.embedded import embedded_database_created
from irt_pipeline.storage.migrate import pending_migrations
from irt_pipeline.storage.runs import AbilityRows, ScaleRecord
from irt_pipeline.storage.scale import BankScale, bank_scale

DATABASE_URL_ENV = "IRT_DATABASE_URL"
RESOURCE_KEY = "irt_db"
MIGRATE_HINT = "run `irt-pipeline migrate` (or `make demo`)"


class IrtDatabase(dg.ConfigurableResource):
    """PostgreSQL holding items, student_attempts and the calibration tables."""

    url: str = Field(
        default="",
        description=(
            "psycopg connection URL. Empty: storage.database_url(), i.e. IRT_DATABASE_URL or, "
            "when unset, the embedded PostgreSQL of the checkout (.irt/pgdata)."
        ),
    )

    def _given_url(self) -> str:
        url = self.url
        if isinstance(url, dg.EnvVar):  # used outside a run (e.g. by the CLI): not resolved yet
            url = url.get_value() or ""
        return url or os.environ.get(DATABASE_URL_ENV, "")

    def resolved_url(self) -> str:
        return self._given_url() or storage.database_url()

    def unready_reason(self) -> str | None:
        """Why the sensors must leave the database alone, or None when it is migrated.

        On a fresh checkout `dg dev` starts the sensors before anybody ran `irt-pipeline
        migrate`: without this they would create the embedded cluster from inside the code
        server and then fail every tick on missing tables. They skip with this reason instead
        (and never create or migrate a database: DDL is the migrate command's job)."""
        if not self._given_url() and not embedded_database_created():
            return f"no database yet: {MIGRATE_HINT} (it creates the embedded PostgreSQL in .irt/pgdata)"
        with self.connection() as conn:
            pending = pending_migrations(conn)
        if pending:
            return (f"the database is not migrated ({len(pending)} migration(s) pending, from "
                    f"{pending[0]}): {MIGRATE_HINT}")
        return None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """One connection, closed on exit (storage.connect gives autocommit connections;
        every storage write opens its own transaction)."""
        with storage.connect(self.resolved_url()) as conn:
            yield conn

    # -- reads ---------------------------------------------------------------------------
    def read_bank(self, item_bank: str) -> BankSnapshot:
        """First attempts of the bank's items, every item id of the bank and the data watermark,
        from one REPEATABLE READ snapshot."""
        with self.connection() as conn:
            return read_bank_snapshot(conn, item_bank)

    def bank_scale(self, item_bank: str, item_ids: Sequence[str]) -> BankScale:
        """The bank's current scale and the values of `item_ids` on it (storage/scale.py)."""
        with self.connection() as conn:
            return bank_scale(conn, item_bank, item_ids)

    def bank_items(self, item_bank: str) -> list[str]:
        with self.connection() as conn:
            return list(storage.bank_items(conn, item_bank))

    def item_banks(self) -> list[str]:
        with self.connection() as conn:
            return list(storage.item_banks(conn))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.connection() as conn:
            return storage.get_run(conn, run_id)

    def runs_of_bank(self, item_bank: str) -> list[dict[str, Any]]:
        with self.connection() as conn:
            return list(storage.runs_of_bank(conn, item_bank))

    def latest_parameters(self, item_id: str) -> IrtItemParameters | None:
        with self.connection() as conn:
            return storage.latest_parameters(conn, item_id)

    def run_parameters(self, run_id: str) -> list[IrtItemParameters]:
        with self.connection() as conn:
            return storage.run_parameters(conn, run_id)

    # -- the audit row -------------------------------------------------------------------
    def start_run(
        self, *, item_bank: str, config: Mapping[str, Any], dagster_run_id: str | None,
        data_watermark: int | None = None, data_read_at: datetime | None = None,
    ) -> str:
        """storage.start_run on a connection kept open as the run's lease (storage/leases.py)."""
        return leases.start_leased_run(
            self.resolved_url(), item_bank=item_bank, config=config, dagster_run_id=dagster_run_id,
            data_watermark=data_watermark, data_read_at=data_read_at,
        )

    def fail_run(self, run_id: str, error: str) -> bool:
        try:
            with self.connection() as conn:
                return storage.fail_run(conn, run_id, error)
        finally:
            leases.release(run_id)

    def fail_runs_of_dagster_run(self, dagster_run_id: str, error: str) -> int:
        try:
            with self.connection() as conn:
                return storage.fail_runs_of_dagster_run(conn, dagster_run_id, error)
        finally:
            leases.release_dagster_run(dagster_run_id)

    def publish_calibration(
        self,
        run_id: str,
        parameters: pd.DataFrame,
        *,
        items_calibrated: int,
        items_skipped: int,
        items_flagged: int,
        convergence_achieved: bool,
        iterations_used: int,
        elapsed_seconds: float,
        scale: ScaleRecord | None = None,
        abilities: AbilityRows | None = None,
    ) -> int:
        # on the run's lease: this process's lease connection, or the lease taken up from the
        # process that started the run (a killed writer then leaves a sweepable row at once)
        with leases.take_connection(self.resolved_url(), run_id) as conn:
            return storage.publish_calibration(
                conn,
                run_id,
                parameters,
                items_calibrated=items_calibrated,
                items_skipped=items_skipped,
                items_flagged=items_flagged,
                convergence_achieved=convergence_achieved,
                iterations_used=iterations_used,
                elapsed_seconds=elapsed_seconds,
                scale=scale,
                abilities=abilities,
            )


def irt_database() -> IrtDatabase:
    """The production binding: IRT_DATABASE_URL through dg.EnvVar when it is set.

    EnvVar is resolved when a run starts (and hidden in the UI); when the variable is unset the
    resource falls back to the embedded database, which an unresolvable EnvVar would not allow.
    """
    if os.environ.get(DATABASE_URL_ENV):
        return IrtDatabase(url=dg.EnvVar(DATABASE_URL_ENV))
    return IrtDatabase()


@dg.definitions
def resources() -> dg.Definitions:
    """The data database, and pickled asset values under the instance's storage folder.

    The IO manager is bound explicitly so that every launch, including the CLI's in-process
    runs (whose default would be in-memory), leaves values the UI can re-execute from.
    """
    return dg.Definitions(
        resources={RESOURCE_KEY: irt_database(), "io_manager": dg.FilesystemIOManager()}
    )

