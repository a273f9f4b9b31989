"""Operator tools: DAGs triggered by hand (UI, ``airflow dags trigger --conf``) that wait in
the triggerer with the deferrable sensors of gw_ops.airflow.sensors.

Declarations only.
"""
from datetime import timedelta

from airflow.sdk import DAG, Param

from gw_ops.airflow.handler_dags import default_args
from gw_ops.airflow.sensors import GcnNoticeSensor, LVAlertSensor

with DAG(
    dag_id="gw_ops_wait_for_label",
    schedule=None,
    catchup=False,
    tags=["gw-ops", "tools"],
    # One retry: when the label comes within seconds of the deferral, the LocalExecutor's
    # late report of the deferring process ("success" while the task is already queued for
    # its resume) makes Airflow 3.3's scheduler fail the task. The retry is safe: the
    # sensor first checks GraceDB, finds the label and succeeds.
    default_args=default_args(retries=1, retry_delay=timedelta(seconds=2)),
    render_template_as_native_obj=True,
    params={"uid": Param("", type="string", description="superevent id, e.g. S261128a"),
            "label": Param("ADVOK", type="string"),
            "timeout_s": Param(3600, type="number")},
    doc_md="### gw_ops_wait_for_label\n\nWaits, deferred in the triggerer (no worker slot), until "
           "superevent `uid` carries `label`. Trigger with "
           "`airflow dags trigger gw_ops_wait_for_label --conf '{\"uid\": \"S261128a\", \"label\": \"ADVOK\"}'`.",
):
    LVAlertSensor(task_id="wait_for_label", uid="{{ params.uid }}", label="{{ params.label }}",
                  timeout=3600)

with DAG(
    dag_id="gw_ops_wait_for_gcn_notice",
    schedule=None,
    catchup=False,
    tags=["gw-ops", "tools"],
    default_args=default_args(retries=0),
    render_template_as_native_obj=True,
    params={"notice_types": Param(["FERMI_GBM_GND_POS"], type="array"),
            "ivorn_contains": Param("", type="string")},
    doc_md="### gw_ops_wait_for_gcn_notice\n\nWaits, deferred in the triggerer, until the GCN listener "
           "receives a notice of one of `notice_types` (names of `gcn.NoticeType`), optionally with "
           "`ivorn_contains` in its IVORN.",
):
    GcnNoticeSensor(task_id="wait_for_notice", notice_types="{{ params.notice_types }}",
                    ivorn_contains="{{ params.ivorn_contains }}", timeout=3600)
