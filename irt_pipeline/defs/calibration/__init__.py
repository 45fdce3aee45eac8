"""Calibration: a bank's responses to published item parameters.

  partitions, config, values   the item-bank partitions, the run config, what the assets hand
                               each other
  assets, checks               response_matrix -> eligible_items -> item_parameters ->
                               scale_linking -> (fit_statistics, student_abilities) ->
                               supabase_writes, and their asset checks
  reporting, plots             metadata tables and matplotlib pictures of the assets
  backfills, jobs              the backfill policy and ``calibration_job``
"""
