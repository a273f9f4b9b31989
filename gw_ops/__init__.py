"""gw-ops: a low-latency gravitational-wave alert pipeline on Apache Airflow 3.

The package root is the domain library: plain functions and service clients,
importable and testable without a running Airflow.  Airflow glue lives in
:mod:`gw_ops.airflow`.
"""
__version__ = "0.1.0"
