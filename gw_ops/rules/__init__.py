"""Pure rules of the pipeline: plain functions and dataclasses of GraceDB JSON and settings.

No I/O here (no GraceDB, Redis, Airflow): the modules of :mod:`gw_ops.handlers` do the
talking and call these for every decision, so the decisions are table-tested alone.
"""
