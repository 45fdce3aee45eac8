"""The code location: the only module the tools point at (`dg dev`, `dagster dev`, workspace.yaml).

Everything Dagster lives in irt_pipeline/defs/ and is autoloaded from there ([tool.dg.project]
in pyproject.toml names the defs module).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
