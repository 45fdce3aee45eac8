"""The Dagster layer of irt-pipeline, autoloaded by ``irt_pipeline.definitions``.

Modules: partitions, resources, config, values (what the assets hand each other), assets,
checks, hooks (failure bookkeeping), sensors, jobs, and launch (the ``irt-pipeline calibrate``
command; no Dagster objects of its own).
"""
