"""Handler DAGs: one per ``@lvalert.handler`` / ``@gcn.handler`` function of gw_ops.

Declarations only: the registry (gw_ops.transport.registry) says which handlers exist, with their
nodes or notice types and their pool, queue and priority.
"""
from gw_ops.airflow.handler_dags import declare_handler_dags

globals().update(declare_handler_dags())
