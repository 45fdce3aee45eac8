"""The Dagster test instance of the defs tests, for the contract tests' CLI runs."""

from irt_pipeline_tests.defs.conftest import instance  # noqa: F401
