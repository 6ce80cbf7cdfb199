"""Storage faults met by the pipeline (DuckDB I/O errors, a full disk), translated into hub errors that say what to do."""

from __future__ import annotations

import errno
import re

import duckdb

from hub.errors import DiskFull, HubError, StorageFault, WorkDatabaseBusy, WorkDatabaseDamaged

NO_SPACE = "No space left on device"
# What DuckDB says of a file it cannot read as a database: truncated, overwritten, or not DuckDB at all.
DAMAGED = ("not a valid DuckDB database", "Could not read enough bytes", "Corrupt", "corrupt", "checksum")
LOCKED = "Could not set lock"
HOLDER = re.compile(r"\(PID (\d+)\)")


def busy_cause(text: str) -> str:
    """DuckDB's lock message led by what it means: the pipeline (the holder, when DuckDB names it) is running."""
    pid = HOLDER.search(text)
    who = f"process {pid.group(1)}" if pid else "another process"
    return f"the pipeline is running ({who} holds it), try again when it ends; {text}"


def storage_fault(exc: BaseException, what: str) -> HubError | None:
    """The hub error for ``exc`` met while working on ``what`` (a file or folder); None if it is not a storage fault."""
    if isinstance(exc, HubError):
        return exc
    text = str(exc)
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or NO_SPACE in text:
        return DiskFull(what, text)
    if not isinstance(exc, duckdb.Error):
        return None
    if LOCKED in text:
        return WorkDatabaseBusy(what, busy_cause(text))
    if any(sign in text for sign in DAMAGED) or isinstance(exc, (duckdb.SerializationException,
                                                                  duckdb.InternalException)):
        return WorkDatabaseDamaged(what, text)
    if isinstance(exc, (duckdb.IOException, duckdb.FatalException, duckdb.PermissionException)):
        return StorageFault(what, text)
    return None
