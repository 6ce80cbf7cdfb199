"""A failed publish removes what it wrote; a version a killed publish left unswitched is swept by the next one."""

from __future__ import annotations

import signal
import subprocess
import sys

import duckdb

from tests.warehouse.test_publish_crash import CHILD, published  # noqa: F401 - the fixture, reused
from warehouse.publish import publish
from warehouse.published import CURRENT
from warehouse.work import WORK_DB

# In a private mount namespace the snapshots folder is a small tmpfs: one publish fits, then the disk is filled
# once the second publish's folder is renamed, so building its serving files meets a real ENOSPC.
FULL_DISK = """
import os, subprocess, sys
from pathlib import Path
import duckdb
import warehouse.publish as publishing

work, snapshots = sys.argv[1], Path(sys.argv[2])
with duckdb.connect(work, read_only=True) as conn:
    publishing.publish(conn, snapshots, ["run-1"])
    def reached(step):
        if step == "renamed":
            subprocess.run(["dd", "if=/dev/zero", f"of={snapshots}/filler", "bs=64k"], capture_output=True)
    publishing._reached = reached
    try:
        publishing.publish(conn, snapshots, ["run-2"])
    except Exception as exc:
        print(type(exc).__name__, " ".join(str(exc).split()))
print(sorted(p.name for p in snapshots.iterdir() if p.name != "filler"))
print((snapshots / "CURRENT").read_text().strip())
"""


def test_a_publish_failing_on_a_full_disk_leaves_no_version_folder(published, tmp_path):  # noqa: F811
    snapshots = tmp_path / "small-disk"
    snapshots.mkdir()
    script = 'mount -t tmpfs -o size=16m tmpfs "$1" && exec "$2" -c "$3" "$4" "$1"'
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(snapshots), sys.executable, FULL_DISK,
                           str(published.warehouse_dir / WORK_DB)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    error, left, current = done.stdout.splitlines()[-3:]
    assert error.startswith("PublishError") and "No space left on device" in error
    assert "previous snapshot keeps serving" in error
    assert (left, current) == ("['CURRENT', 'v000001']", "v000001")  # no v000002, no temporary serving files


def test_a_version_a_killed_publish_never_switched_to_is_swept_by_the_next(published):  # noqa: F811
    snapshots = published.snapshots_dir
    work = str(published.warehouse_dir / WORK_DB)
    killed = subprocess.run([sys.executable, "-c", CHILD.replace("keep=1", "keep=5"), work, str(snapshots), "prepared"],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (snapshots / "v000002").is_dir() and (snapshots / CURRENT).read_text().strip() == "v000001"

    with duckdb.connect(work, read_only=True) as conn:
        result = publish(conn, snapshots, ["run-3"], keep=5)
    assert result.version == "v000003"  # a number once given is not given again
    assert sorted(p.name for p in snapshots.iterdir()) == [CURRENT, "v000001", "v000003"]
