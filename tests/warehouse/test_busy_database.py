"""A working database another process holds for writing: every read command says so clearly; reads create nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb
import pytest

from warehouse import db
from warehouse.work import WORK_DB, open_work

# Every command of the CLI that reads the working database and writes nothing to it.
READ_COMMANDS = [
    ["quality", "list"],
    ["quality", "list", "--json"],
    ["quality", "show", "1"],
    ["quality", "batches"],
    ["conflicts", "list"],
    ["conflicts", "show", "population", "110101199003070012"],
    ["identity", "list"],
    ["identity", "show", "household", "1"],
    ["identity", "model"],
    ["identity", "export", "--out", "{tmp}/links.csv"],
    ["warehouse", "check"],
]
HOLD = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()"


def _hub(args: list[str], tmp) -> subprocess.CompletedProcess[str]:
    args = [a.format(tmp=tmp) for a in args]
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture
def held(settings):
    """The working database, created by a first open, then held read-write by another real process."""
    with open_work(settings.warehouse_dir):
        pass
    other = subprocess.Popen([sys.executable, "-c", HOLD, str(settings.warehouse_dir / WORK_DB)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "open"
    yield other
    other.stdin.close()
    other.wait(timeout=60)


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_a_read_command_on_a_busy_working_database_says_the_pipeline_is_running(held, command, tmp_path):
    done = _hub(command, tmp_path)
    err = " ".join(done.stderr.split())
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0 and "Traceback" not in said, said[-3000:]
    clear = "the pipeline is running" in (said if command[0] == "warehouse" else err)
    assert clear and f"process {held.pid}" in said, said[-3000:]


def test_a_failing_statement_names_its_step_and_first_line_never_its_parameters():
    conn = duckdb.connect(":memory:")
    with pytest.raises(duckdb.CatalogException) as raised:
        db.run(conn, "test.lookup", "SELECT *\nFROM no_such_table WHERE id_number = ?", ["110101199003070012"])
    notes = " ".join(getattr(raised.value, "__notes__", []))
    assert notes == "step test.lookup: SELECT *" and "110101199003070012" not in str(raised.value)


def test_a_busy_file_met_by_a_step_names_the_step_and_the_sql_but_not_the_parameters(held, settings):
    from hub.errors import WorkDatabaseBusy

    conn = duckdb.connect(":memory:")
    with pytest.raises(WorkDatabaseBusy) as raised:
        db.run(conn, "test.attach", f"ATTACH '{settings.warehouse_dir / WORK_DB}' AS w -- ?", None)
    assert "step test.attach: ATTACH" in str(raised.value) and f"process {held.pid}" in str(raised.value)


@pytest.mark.parametrize("command", [*READ_COMMANDS, ["status"]], ids=" ".join)
def test_a_read_command_on_a_fresh_data_dir_creates_no_working_database(settings, command, tmp_path):
    done = _hub(command, tmp_path)
    assert "Traceback" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]
    assert not (settings.warehouse_dir / WORK_DB).exists()
    assert not (settings.warehouse_dir / (WORK_DB + ".wal")).exists()


def test_read_only_opens_create_no_table_in_an_existing_file(settings):
    with open_work(settings.warehouse_dir) as conn:
        conn.execute("DROP TABLE quality_metrics")
    with open_work(settings.warehouse_dir, read_only=True) as conn:
        assert "quality_metrics" not in db.tables(conn)
    with open_work(settings.warehouse_dir) as conn:
        assert "quality_metrics" in db.tables(conn)  # a read-write open (a pipeline step) creates what is missing
