"""Partitions: one partition per item bank; every asset of the calibration chain uses it."""

from __future__ import annotations

import dagster as dg

ITEM_BANK_PARTITIONS_NAME = "item_bank"

item_bank_partitions = dg.DynamicPartitionsDefinition(name=ITEM_BANK_PARTITIONS_NAME)
