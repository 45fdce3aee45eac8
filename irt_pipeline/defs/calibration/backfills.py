"""Backfill policy of the calibration chain: ONE RUN PER ITEM BANK, ``BackfillPolicy.multi_run(1)``.

Set explicitly on every asset of the chain (mixed policies make Dagster fall back to
``multi_run(1)`` with a warning). A backfill over banks b1, b2, b3 launches three runs, each
materializing the whole chain for one bank. Chosen over ``single_run()`` because:

* each bank needs its own audit row in ``irt_calibration_runs`` (``item_parameters`` starts
  one, ``supabase_writes`` completes it, keyed by the bank) and its own
  CALIBRATION_IN_PROGRESS guard; a single run over several banks would have to open, fail and
  complete several rows from one step, and one bank's failure would fail the others;
* each run carries its bank as its partition range start, so the run queue's tag concurrency
  limit (dagster.yaml) runs the banks side by side, one run per bank at a time, up to
  ``max_concurrent_runs``; a failed bank is retried alone (the UI's "Failed and missing" selection);
* the assets read ``context.partition_key`` and hold one bank's response matrix in memory;
  single-run code must read ``context.partition_keys`` and would load every bank at once.

The cost, a run worker start per bank (seconds), is small next to a calibration.
"""

from __future__ import annotations

import dagster as dg

BANKS_PER_RUN = 1

calibration_backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=BANKS_PER_RUN)
