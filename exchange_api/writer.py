"""The audit writer: commits the audit rows of many requests at once, then releases their answers.

A request hands its :class:`~exchange_api.audit.Ticket` to :meth:`GroupWriter.submit` and waits. The
writer takes every ticket queued so far (up to a bound), commits them in one transaction (nonces, quotas,
chained rows) and only then wakes the waiting requests with their verdicts. Under load a commit carries
tens of requests, so the cost of a durable commit is shared instead of paid per lookup; when idle, a
lone request is committed at once. If the commit fails, every request of the group fails: no answer
leaves without its audit row.

Two modes. ``inline`` (the default with SQLite): the event loop itself commits, once per loop
iteration, every ticket the iteration produced; a commit blocks the loop for about a millisecond, but
no second thread fights the request path for the GIL (measured: a writer thread added ~0.4 ms of
GIL hand-over to every request). ``thread`` (the default with a networked database such as
PostgreSQL, whose round trips would otherwise stall the loop): one writer thread, one connection.

On SQLite with ``synchronous=FULL`` the group is made durable by an fsync of the WAL that runs after
COMMIT on a helper thread, the chain lock already released (see ``audit_sql.sqlite_synchronous``): the
next group, of this process or another, is written while the disk flushes this one, and the group's
answers are released only when the fsync returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Sequence

from exchange_api.audit import AuditLog, Ticket

log = logging.getLogger(__name__)

_STOP = object()
# fsyncs of the WAL running at once: a group committed while one runs starts its own at once instead of waiting
# for it to end (which would make it wait up to two fsyncs); each fsync covers every group committed before it.
MAX_SYNCS = 2


class GroupWriter:
    """Serialises audit appends through one thread and one connection, committing in groups."""

    def __init__(self, audit: AuditLog, max_group: int = 512, mode: str = "auto"):
        self.audit = audit
        self.max_group = max_group
        if mode == "auto":
            mode = "inline" if audit.engine.dialect.name == "sqlite" else "thread"
        if mode not in ("inline", "thread"):
            raise ValueError(f"audit writer mode must be inline, thread or auto, not {mode!r}")
        self.mode = mode
        self._inline: list[tuple[Ticket, asyncio.Future]] = []
        self._flush_scheduled = False
        self._committing = False
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._sync_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._unsynced: list[list[tuple[Ticket, asyncio.Future]]] = []  # committed, waiting for an fsync to start
        self._syncs_running = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.groups = 0  # commits made, requests in them, time writing them in the loop: for the metrics
        self.grouped = 0
        self.write_seconds = 0.0
        self.lock_busy = 0

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                    self._thread.start()

    async def submit(self, ticket: Ticket) -> Ticket:
        """Queue ``ticket`` and wait until its group is committed; raises if the commit failed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        if self.mode == "inline":
            self._inline.append((ticket, future))
            self._kick(loop)
        else:
            self._ensure_started()
            self._queue.put((ticket, loop, future))
        await future
        return ticket

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make sure one flush is due (exactly one: a second would only spin)."""
        if not self._flush_scheduled and not self._committing:
            # After the callbacks already due: every request this loop iteration reads joins the group.
            self._flush_scheduled = True
            loop.call_soon(self._flush_inline)

    def _flush_inline(self) -> None:
        """Take the chain lock, write the waiting group in the loop, commit it (the fsync) on the helper thread."""
        self._flush_scheduled = False
        if self._committing or not self._inline:
            return  # the commit or lock wait in progress starts the next group when it ends
        if self.audit.lock(wait=False):
            self._write_group()
            return
        # Another process is committing: wait for the lock on the helper thread, never in the loop (where it
        # would stall every request); meanwhile the group grows.
        self.lock_busy += 1
        self._committing = True
        loop = asyncio.get_running_loop()
        waited = self._committer().submit(self.audit.lock)
        waited.add_done_callback(lambda f: loop.call_soon_threadsafe(self._locked, f))

    def _locked(self, waited: concurrent.futures.Future) -> None:
        self._committing = False
        error = waited.exception()
        if error is not None:
            group, self._inline = self._inline, []
            self._done(group, error)
            return
        self._write_group()

    def _write_group(self) -> None:
        """With the chain lock held: write the group now, commit it on the helper thread."""
        group, self._inline = self._inline[:self.max_group], self._inline[self.max_group:]
        started = time.perf_counter()
        try:
            pending = self.audit.begin_group([ticket for ticket, _ in group], locked=True)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting request (the lock is released)
            log.exception("audit write of %d request(s) failed; their answers are withheld", len(group))
            self._done(group, exc)
            return
        self.write_seconds += time.perf_counter() - started
        self._committing = True
        loop = asyncio.get_running_loop()
        done = self._committer().submit(pending.finish, sync=False)
        done.add_done_callback(lambda f: loop.call_soon_threadsafe(self._committed, group, f))

    def _committer(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            # One thread that only waits for COMMIT, with the GIL released: one hand-over per group.
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="audit-commit")
        return self._executor

    def _syncer(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._sync_executor is None:
            self._sync_executor = concurrent.futures.ThreadPoolExecutor(MAX_SYNCS, thread_name_prefix="audit-sync")
        return self._sync_executor

    def _committed(self, group: list[tuple[Ticket, asyncio.Future]], done: concurrent.futures.Future) -> None:
        """COMMIT returned and the chain lock is free: fsync the group (its answers wait), write the next one now."""
        self._committing = False
        error = done.exception()
        if error is not None:
            log.error("audit commit of %d request(s) failed; their answers are withheld: %s", len(group), error)
            self._done(group, error)
            return
        if self.audit.wal_path is None:
            self._done(group, None)
            return
        self._unsynced.append(group)
        loop = asyncio.get_running_loop()
        self._start_sync(loop)
        if self._inline:
            self._kick(loop)

    def _start_sync(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start an fsync covering every group committed so far, unless MAX_SYNCS are already running."""
        if self._syncs_running >= MAX_SYNCS or not self._unsynced:
            return  # a running fsync's end starts the next one, for everything committed meanwhile
        groups, self._unsynced = self._unsynced, []
        self._syncs_running += 1
        synced = self._syncer().submit(self.audit.sync)  # begins after each of these groups' COMMIT returned
        synced.add_done_callback(lambda f: loop.call_soon_threadsafe(self._synced, groups, f))

    def _synced(self, groups: list[list[tuple[Ticket, asyncio.Future]]], done: concurrent.futures.Future) -> None:
        self._syncs_running -= 1
        error = done.exception()
        if error is not None:
            log.error("audit fsync of %d group(s) failed; their answers are withheld: %s", len(groups), error)
        for group in groups:
            self._done(group, error)
        self._start_sync(asyncio.get_running_loop())

    def _done(self, group: list[tuple[Ticket, asyncio.Future]], error: BaseException | None) -> None:
        self.groups += 1
        self.grouped += len(group)
        _release([future for _, future in group], error)
        if self._inline:
            self._kick(asyncio.get_running_loop())

    def submit_sync(self, tickets: Sequence[Ticket]) -> None:
        """Commit ``tickets`` in the calling thread (commands, tests)."""
        self.audit.commit(tickets)

    def close(self) -> None:
        for executor in (self._executor, self._sync_executor):  # commits first: their fsyncs are queued after
            if executor is not None:
                executor.shutdown(wait=True)
        self._executor = self._sync_executor = None
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            group = [first]
            while len(group) < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                group.append(item)
            error: BaseException | None = None
            try:
                self.audit.commit([ticket for ticket, _, _ in group])
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
                log.exception("audit commit of %d request(s) failed; their answers are withheld", len(group))
                error = exc
            self.groups += 1
            self.grouped += len(group)
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
            for _, loop, future in group:
                by_loop.setdefault(loop, []).append(future)
            for loop, futures in by_loop.items():
                # One wake-up per event loop and group, not one per request.
                try:
                    loop.call_soon_threadsafe(_release, futures, error)
                except RuntimeError:  # the loop has closed: nobody is waiting any more
                    pass


def _release(futures: list[asyncio.Future], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(RuntimeError("the audit log could not be written"))
