"""The background process that loads HJ_RKXX: ``python -m samples.household_load``.

Reads the database URL and the Arrow IPC file's path from stdin, prints the rows loaded so far
(one number per line) to stdout; a failure exits non-zero with the traceback on stderr.
"""

from __future__ import annotations

import sys

import pyarrow as pa

from samples.household_db import write_household


def main() -> None:
    """Load the table named on stdin into the database named on stdin."""
    url = sys.stdin.readline().strip()
    ipc = sys.stdin.readline().strip()
    if not url or not ipc:
        return  # the generator gave up before submitting anything
    table = pa.ipc.open_file(pa.memory_map(ipc)).read_all()
    written = 0

    def progress(rows: int) -> None:
        nonlocal written
        written += rows
        print(written, flush=True)

    write_household(table, url, progress)


if __name__ == "__main__":
    main()
