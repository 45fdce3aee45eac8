"""The storage layer: PostgreSQL (Supabase in production) through psycopg 3.

Imports only numpy, pandas, psycopg, the standard library and `irt_pipeline.errors`.
"""

from irt_pipeline.storage.attempts import bank_items, item_banks, read_attempts
from irt_pipeline.storage.connection import connect
from irt_pipeline.storage.demo import seed_demo
from irt_pipeline.storage.embedded import database_url
from irt_pipeline.storage.migrate import apply_migrations
from irt_pipeline.storage.parameters import latest_parameters, run_parameters
from irt_pipeline.storage.runs import (
    fail_run,
    fail_runs_of_dagster_run,
    get_run,
    publish_calibration,
    runs_of_bank,
    start_run,
)
from irt_pipeline.storage.abilities import latest_ability, run_abilities, write_abilities

__all__ = [
    "database_url",
    "connect",
    "apply_migrations",
    "read_attempts",
    "bank_items",
    "item_banks",
    "start_run",
    "fail_run",
    "fail_runs_of_dagster_run",
    "publish_calibration",
    "get_run",
    "runs_of_bank",
    "latest_parameters",
    "run_parameters",
    "seed_demo",
    "write_abilities",
    "latest_ability",
    "run_abilities",
]
