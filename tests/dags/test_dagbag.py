"""Every DAG file imports cleanly and has the shape the hub relies on."""

from __future__ import annotations

from airflow.dag_processing.dagbag import DagBag

from hub.airflow_env import DAGS_FOLDER, WAREHOUSE_POOL


def _bag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_dags_import_without_errors():
    bag = _bag()
    assert bag.import_errors == {}
    assert {"ingest_household", "reconcile_publish"} <= set(bag.dag_ids)


def test_ingestion_dag_lands_then_stages_with_retries_and_an_outlet():
    dag = _bag().dags["ingest_household"]
    land, stage = dag.get_task("land"), dag.get_task("stage")
    assert stage.upstream_task_ids == {"land"}
    assert land.retries >= 1 and land.execution_timeout is not None and land.on_failure_callback
    assert [a.uri for a in stage.outlets] == ["hub://staging/household"]
    assert stage.pool == WAREHOUSE_POOL == "hub_warehouse"  # the one slot hub.airflow_env creates


def _assets(condition) -> list:
    """The assets of a schedule condition: one asset, or an any/all of them."""
    return [condition] if hasattr(condition, "uri") else [a for o in condition.objects for a in _assets(o)]


def test_publish_dag_is_scheduled_on_staged_data_not_the_clock():
    dag = _bag().dags["reconcile_publish"]
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    from hub import jobs

    expected = {f"hub://staging/{name}" for name in jobs.sources()}
    assert "hub://staging/household" in expected
    assert {a.uri for a in _assets(dag.timetable.asset_condition)} == expected
    assert dag.get_task("reconcile_and_publish").outlets[0].uri == "hub://snapshots/current"
    assert dag.get_task("reconcile_and_publish").pool == WAREHOUSE_POOL
