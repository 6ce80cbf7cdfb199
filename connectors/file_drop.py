"""File drops: CSV and .xlsx files a department writes into a folder, each file taken once, streamed as Arrow.

Options (``options`` of the source configuration; keyword arguments of ``FileDropConnector``):

- ``pattern``: glob of the files to take, relative to the folder (default ``*.csv``). ``.xlsx``/``.xlsm`` files are
  read as workbooks (openpyxl, read-only), anything else as CSV. ``<name>.done`` markers are never taken.
- ``encoding``: of CSV files: ``utf-8``, ``gbk``, ``gb18030`` (or another ASCII-compatible codec), or ``auto`` (the
  default): per file, a UTF-8 BOM or UTF-8 text means UTF-8, anything else GB18030, the superset of GBK. The first
  chunk holding non-ASCII bytes decides; a UTF-8 file with a few corrupted bytes stays UTF-8 (those rows are
  quarantined) rather than being read as GB18030 mojibake.
- ``delimiter``: CSV field separator (default ``,``). ``quote``: CSV quote character (default ``"``; ``null`` when the
  department never quotes, so that ``"`` is data). Quoted values may hold delimiters and line breaks.
- ``header_row``: physical line (CSV) or row (workbook) holding the column names (default 1); lines above are titles.
- ``sheet``: workbook sheet to read (default the first).
- ``completion``: when a file is complete: ``marker`` (default: ``<name>.done`` exists beside it) or ``stable`` (its
  size and mtime did not change over ``stable_seconds``, default 5). ``stable`` stats the new files, sleeps once and
  stats them again, once per extraction and only when there are new files: unlike remembering a first observation in
  the watermark, it needs no second scheduled run (a file is taken in the run that first sees it settled), it works
  for full re-extracts (which start without a watermark), and it never compares our clock with the writer's mtime.
- ``max_record_lines``: a record (a quoted value with line breaks) may span at most this many lines (default 20); past
  that, or at the end of the file, its opening quote is taken to be unterminated: that line is quarantined and reading
  resumes on the next one. CSV cannot tell a stray quote closed by another stray quote a few lines later from a value
  with line breaks; departments whose values never hold line breaks should set 1.

Each row lands with every column as text plus ``_file`` (name relative to the folder) and ``_line`` (1-based physical
line, or sheet row, where the record starts). A row that cannot be decoded or parsed goes to ``quarantined`` as
``{"file", "line", "reason", "raw"}`` (``raw``: the line as read, bad bytes escaped, at most 200 characters) while the
rest of its file lands; a problem with a whole file has ``line`` null. Blank lines hold no record and are skipped.

The watermark is a JSON text, ``{"files": {name: {"size", "mtime_ns", "sha256"[, "changed"]}}}``: the files taken so
far. A file enters it once its last batch has been pulled (with its quarantined rows); a consumer that stops inside a
file gets the whole file again next time. A taken file whose bytes later differ is reported once per new version as
"file changed after it was taken" (``changed`` records that version) and never taken again. Source files are only
ever opened for reading.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
import zipfile
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from connectors.base import Connector, Extraction
from connectors.config import SourceConfig
from connectors.encodings import AUTO, BadLine, LineDecoder, UnreadableText, checked, line_breaks
from hub.errors import ConfigError, SchemaDrift, SourceError, SourceUnavailable
from hub.checksums import sha256_file

MARKER = ".done"
WORKBOOKS = (".xlsx", ".xlsm")
CHUNK_BYTES = 4 << 20  # bytes decoded and parsed at a time: memory stays at a few times this, whatever the file size
MAX_RECORD_BYTES = 1 << 20  # a record still open after this many bytes has an unterminated quote
MAX_LINE_BYTES = 64 << 20  # a "line" longer than this is not CSV
OPTIONS = ("pattern", "encoding", "delimiter", "quote", "header_row", "sheet", "completion", "stable_seconds",
           "max_record_lines")
_EXACT_FLOAT = 2**53  # larger whole numbers in a workbook have already lost digits: shown as Excel holds them


def _entry(file: str, line: int | None, reason: str, raw: str = "") -> dict:
    return {"file": file, "line": line, "reason": reason, "raw": raw[:200]}


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


class _Hashed:
    """A file read once, front to back, hashing what is read."""

    def __init__(self, fh: BinaryIO):
        self.fh, self.digest, self.size = fh, hashlib.sha256(), 0

    def read(self, n: int) -> bytes:
        block = self.fh.read(n)
        self.digest.update(block)
        self.size += len(block)
        return block

    def fingerprint(self, mtime_ns: int) -> dict:
        """Size and sha256 of the whole file (the unread rest is read now)."""
        while self.read(1 << 20):
            pass
        return {"size": self.size, "mtime_ns": mtime_ns, "sha256": self.digest.hexdigest()}


def _line_chunks(src: _Hashed, size: int) -> Iterator[bytes]:
    """The file in chunks of whole lines (the last may lack its line break)."""
    rest = b""
    while block := src.read(size):
        block = rest + block if rest else block
        cut = block.rfind(b"\n") + 1
        if not cut and len(block) > MAX_LINE_BYTES:
            raise SchemaDrift(f"a line of more than {MAX_LINE_BYTES} bytes: not a CSV file")
        rest = block[cut:]
        if cut:
            yield block[:cut]
    if rest:
        yield rest


def _nth_line(buf: bytes, k: int) -> int:
    """Offset of the k-th line (0-based) of ``buf``."""
    if k == 0:
        return 0
    return int(np.flatnonzero(np.frombuffer(buf, np.uint8) == 10)[k - 1]) + 1


def _last_lines(buf: bytes, k: int) -> int:
    """Offset of the first of the last ``k`` lines of ``buf``."""
    pos = len(buf) - 1 if buf.endswith(b"\n") else len(buf)
    for _ in range(k):
        pos = buf.rfind(b"\n", 0, pos)
        if pos < 0:
            break
    return pos + 1


def _ends_quoted(text: str, delimiter: str, quote: str) -> bool:
    """Whether a record ends inside a quoted value, by Arrow's rules (a quote opens a value only at its start)."""
    inside, at_start, in_run = False, True, False
    for ch in text:
        if ch == quote:
            # A run of quotes that starts inside a value or at its start toggles at every quote ("" is one quote).
            if inside or at_start or in_run:
                inside, in_run = not inside, True
            at_start = False
        else:
            in_run = False
            at_start = not inside and ch in (delimiter, "\n", "\r")
    return inside


def _blank(buf: bytes, line: int, starts: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Which of the given one-line rows are blank lines."""
    data = np.frombuffer(buf, np.uint8)
    breaks = np.flatnonzero(data == 10)
    begins = np.concatenate(([0], breaks + 1))[:len(breaks)]
    length = breaks - begins
    crlf = (length == 1) & (data[np.maximum(breaks - 1, 0)] == 13)
    return np.isin(starts, line + np.flatnonzero((length == 0) | crlf)) & (spans == 1)


def _cell_text(value: Any) -> str | None:
    # Workbook cells arrive typed; landing keeps text, written the way the SQL connector writes its values.
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_FLOAT:
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if hasattr(value, "hour") and hasattr(value, "day") else value.isoformat()
    return str(value)


class FileDropConnector(Connector):
    """A folder a department drops CSV or .xlsx files into; each complete file is taken once."""

    kind = "file_drop"

    def __init__(self, path: Path, *, key: str, columns: Sequence[str] | None = None, pattern: str = "*.csv",
                 encoding: str = AUTO, delimiter: str = ",", quote: str | None = '"', header_row: int = 1,
                 sheet: str | None = None, completion: str = "marker", stable_seconds: float = 5.0,
                 batch_size: int = 100_000, max_record_lines: int = 20, chunk_bytes: int = CHUNK_BYTES):
        problems = []
        try:
            self.encoding = checked(encoding)
        except ConfigError as exc:
            problems += exc.problems
        for label, char in (("delimiter", delimiter), ("quote", quote)):
            if char is not None and not (len(char) == 1 and char.isascii() and char not in "\r\n"):
                problems.append(f"{label} must be one ASCII character other than a line break, not {char!r}")
        if delimiter == quote:
            problems.append("delimiter and quote must differ")
        if completion not in ("marker", "stable"):
            problems.append(f"completion must be 'marker' or 'stable', not {completion!r}")
        for label, number in (("header_row", header_row), ("batch_size", batch_size),
                              ("max_record_lines", max_record_lines), ("chunk_bytes", chunk_bytes)):
            if not isinstance(number, int) or number < 1:
                problems.append(f"{label} must be a positive whole number, not {number!r}")
        if not isinstance(stable_seconds, (int, float)) or stable_seconds < 0:
            problems.append(f"stable_seconds must be a non-negative number, not {stable_seconds!r}")
        if problems:
            raise ConfigError([f"file drop {path}: {p}" for p in problems])
        self.path, self.key, self.pattern = Path(path), key, pattern
        self.columns = list(dict.fromkeys([key, *columns])) if columns is not None else None
        self.delimiter, self.quote, self.header_row, self.sheet = delimiter, quote, header_row, sheet
        self.completion, self.stable_seconds = completion, float(stable_seconds)
        self.batch_size, self.max_record_lines, self.chunk_bytes = batch_size, max_record_lines, chunk_bytes
        self._landed: list[str] | None = self.columns  # the columns of this extraction's batches

    # -- which files -------------------------------------------------------------------------------------------

    def extract(self, since: str | None, *, full: bool = False) -> Extraction:
        """Complete files not taken before (all complete files when ``full``), streamed in batches."""
        try:
            found = self.path.is_dir()
        except OSError:
            found = False
        if not found:
            raise SourceUnavailable(f"file drop folder {self.path} does not exist or is not a folder: not mounted?")
        self._landed = self.columns
        extraction = Extraction(batches=iter(()), since=None if full else since, watermark=None if full else since)
        extraction.batches = self._batches(extraction)
        return extraction

    def _batches(self, extraction: Extraction) -> Iterator[pa.RecordBatch]:
        before = self._taken(extraction.since)
        files = dict(before)
        entries: list[dict] = []  # quarantine entries that go out with the next watermark

        def commit() -> None:
            # Watermark and quarantine move together, and only past files whose every batch was pulled.
            extraction.quarantined.extend(entries)
            entries.clear()
            if files != before:
                extraction.watermark = json.dumps({"files": files}, ensure_ascii=False, sort_keys=True,
                                                  separators=(",", ":"))

        present = self._listing()
        for name in sorted(set(present) & set(before)):
            files[name] = self._recheck(name, present[name], before[name], entries)
        for name in self._complete([n for n in present if n not in before], present):
            file_entries: list[dict] = []
            fingerprint = yield from self._take(present[name], name, file_entries)
            if fingerprint is not None:
                files[name] = fingerprint
                entries.extend(file_entries)
                commit()
        commit()

    def _taken(self, since: str | None) -> dict[str, dict]:
        if not since:
            return {}
        try:
            files = json.loads(since)["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"file drop {self.path}: watermark {since[:80]!r} is not a file-drop watermark") from exc
        return dict(files)

    def _listing(self) -> dict[str, Path]:
        try:
            paths = [p for p in self.path.glob(self.pattern) if not p.name.endswith(MARKER) and p.is_file()]
        except OSError as exc:
            raise SourceUnavailable(f"file drop folder {self.path} cannot be listed: {exc}") from exc
        return {p.relative_to(self.path).as_posix(): p for p in sorted(paths)}

    def _recheck(self, name: str, path: Path, taken: dict, entries: list[dict]) -> dict:
        """The taken file's watermark entry, reporting (once) a version whose bytes differ from what was taken."""
        now = _stat(path)
        seen = [(taken["size"], taken["mtime_ns"])]
        if "changed" in taken:
            seen.append((taken["changed"]["size"], taken["changed"]["mtime_ns"]))
        if now is None or now in seen:
            return taken
        digest = sha256_file(path)
        if digest == taken["sha256"]:  # touched, same bytes
            return {**taken, "mtime_ns": now[1]}
        version = {"size": now[0], "mtime_ns": now[1], "sha256": digest}
        if digest != taken.get("changed", {}).get("sha256"):
            entries.append(_entry(name, None, "file changed after it was taken",
                                  f"taken: {taken['size']} bytes, sha256 {taken['sha256']}; "
                                  f"now: {now[0]} bytes, sha256 {digest}"))
        return {**taken, "changed": version}

    def _complete(self, names: list[str], present: dict[str, Path]) -> list[str]:
        """The new files that are complete, in name order."""
        if self.completion == "marker":
            return [n for n in names if present[n].with_name(present[n].name + MARKER).is_file()]
        if not names:
            return []
        first = {n: _stat(present[n]) for n in names}
        time.sleep(self.stable_seconds)  # once per extraction, for all new files together
        return [n for n in names if first[n] is not None and _stat(present[n]) == first[n]]

    # -- one file ----------------------------------------------------------------------------------------------

    def _take(self, path: Path, name: str, entries: list[dict]) -> Generator[pa.RecordBatch, None, dict | None]:
        """The file's rows in batches; returns its fingerprint (None when it vanished before it was opened)."""
        try:
            fh = path.open("rb")  # read only: a department's file is never modified, moved or deleted
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(f"file drop {self.path}: cannot open {name}: {exc}") from exc
        try:
            with fh:
                mtime_ns = os.fstat(fh.fileno()).st_mtime_ns
                src = _Hashed(fh)
                if path.suffix.lower() in WORKBOOKS:
                    fingerprint = src.fingerprint(mtime_ns)
                    fh.seek(0)
                    yield from self._rebatch(self._workbook(fh, name, entries), name)
                elif path.suffix.lower() == ".xls":
                    entries.append(_entry(name, None, "legacy .xls workbooks cannot be read; save it as .xlsx"))
                    fingerprint = src.fingerprint(mtime_ns)
                else:
                    yield from self._rebatch(_CsvFile(self, name, entries).tables(src), name)
                    fingerprint = src.fingerprint(mtime_ns)
                entries.sort(key=lambda e: e["line"] or 0)
        except SchemaDrift as exc:
            raise SchemaDrift(f"file drop {self.path}: {name}: {exc}") from exc
        except OSError as exc:
            raise SourceError(f"file drop {self.path}: cannot read {name}: {exc}") from exc
        return fingerprint

    def _rebatch(self, tables: Iterator[pa.Table], name: str) -> Iterator[pa.RecordBatch]:
        """Batches of exactly ``batch_size`` rows (the file's last may be shorter), with ``_file``."""
        held: list[pa.Table] = []
        rows = 0
        for table in tables:
            at = 0
            while rows + table.num_rows - at >= self.batch_size:
                take = self.batch_size - rows
                yield self._batch([*held, table.slice(at, take)], name)
                held, rows, at = [], 0, at + take
            if at < table.num_rows:
                held.append(table.slice(at))
                rows += table.num_rows - at
        if rows:
            yield self._batch(held, name)

    def _batch(self, pieces: list[pa.Table], name: str) -> pa.RecordBatch:
        table = pieces[0] if len(pieces) == 1 else pa.concat_tables(pieces)
        columns = [table.column(i).combine_chunks() for i in range(table.num_columns)]
        lines = columns.pop()
        files = pa.repeat(pa.scalar(name, pa.string()), table.num_rows)
        return pa.RecordBatch.from_arrays([*columns, files, lines], names=[*(self._landed or []), "_file", "_line"])

    def _positions(self, header: list[str]) -> list[int]:
        """Where each landed column sits in this file; SchemaDrift when one is missing or ambiguous."""
        if self._landed is None:
            self._landed = list(dict.fromkeys([self.key, *header]))
        missing = [c for c in self._landed if c not in header]
        doubled = [c for c in self._landed if header.count(c) > 1]
        if missing or doubled:
            raise SchemaDrift(f"header {header} lacks {missing}" if missing else f"header repeats columns {doubled}")
        return [header.index(c) for c in self._landed]

    # -- workbooks ---------------------------------------------------------------------------------------------

    def _workbook(self, fh: BinaryIO, name: str, entries: list[dict]) -> Iterator[pa.Table]:
        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            book = openpyxl.load_workbook(fh, read_only=True, data_only=True)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, EOFError) as exc:
            entries.append(_entry(name, None, f"not a readable .xlsx workbook: {exc}"))
            return
        try:
            if self.sheet is not None and self.sheet not in book.sheetnames:
                raise SchemaDrift(f"no sheet {self.sheet!r}; sheets: {book.sheetnames}")
            sheet = book[self.sheet] if self.sheet is not None else book.worksheets[0]
            sheet.reset_dimensions()  # some writers record wrong dimensions; read the rows as they are
            rows = sheet.iter_rows(min_row=1, values_only=True)
            positions: list[int] = []
            width = 0
            for number, values in enumerate(rows, 1):
                if number == self.header_row:
                    header = [str(v).strip() if v is not None else "" for v in values]
                    while header and not header[-1]:
                        header.pop()
                    positions, width = self._positions(header), len(header)
                    break
            else:
                entries.append(_entry(name, None, f"no header row at row {self.header_row}: empty sheet?"))
                return
            yield from self._sheet_rows(rows, positions, width, name, entries)
        finally:
            book.close()

    def _sheet_rows(self, rows: Iterator[tuple], positions: list[int], width: int, name: str,
                    entries: list[dict]) -> Iterator[pa.Table]:
        columns: list[list[str | None]] = [[] for _ in positions]
        lines: list[int] = []
        for number, values in enumerate(rows, self.header_row + 1):
            used = len(values)
            while used and values[used - 1] is None:
                used -= 1
            if not used:
                continue  # an empty row holds no record
            if used > width:
                shown = ",".join("" if v is None else str(_cell_text(v)) for v in values[:used])
                entries.append(_entry(name, number, f"wrong number of fields: expected {width}, got {used}", shown))
                continue
            for out, pos in zip(columns, positions):
                out.append(_cell_text(values[pos]) if pos < used else None)
            lines.append(number)
            if len(lines) == self.batch_size:
                yield self._sheet_table(columns, lines)
                columns, lines = [[] for _ in positions], []
        if lines:
            yield self._sheet_table(columns, lines)

    @staticmethod
    def _sheet_table(columns: list[list[str | None]], lines: list[int]) -> pa.Table:
        arrays = [pa.array(c, pa.string()) for c in columns] + [pa.array(lines, pa.int64())]
        return pa.table(arrays, names=[f"k{i}" for i in range(len(arrays))])


class _CsvFile:
    """One CSV file, read chunk by chunk: Arrow parses, this places every row on its line and quarantines the rest."""

    def __init__(self, drop: FileDropConnector, name: str, entries: list[dict]):
        self.drop, self.name, self.entries = drop, name, entries
        self.quote = drop.quote.encode() if drop.quote else None
        self.width = 0
        self.keep: list[int] = []  # positions of the landed columns
        self.flagged: dict[int, BadLine] = {}  # lines with unreadable bytes, until placed in a row

    def tables(self, src: _Hashed) -> Iterator[pa.Table]:
        """The landed columns and ``_line`` of the file's good rows, a table per chunk."""
        drop, decoder = self.drop, LineDecoder(self.drop.encoding)
        try:
            chunks = (decoder.decode(chunk) for chunk in _line_chunks(src, drop.chunk_bytes))
            head = b""
            for text, bad in chunks:  # up to the header line
                head = head + text
                self.flagged.update(bad)
                if head.count(b"\n") >= drop.header_row:
                    break
            lines = head.split(b"\n", drop.header_row)
            if len(lines) < drop.header_row or not lines[drop.header_row - 1].strip():
                self.entries.append(_entry(self.name, None, f"no header row at line {drop.header_row}: empty file?"))
                return
            # A header that cannot be read fails only its file: the drop's other files still land.
            if drop.header_row in self.flagged:
                bad = self.flagged[drop.header_row]
                self.entries.append(_entry(self.name, None, f"header line {drop.header_row} is not {decoder.encoding} "
                                           f"text ({bad.reason}): the file is not read; check options.encoding",
                                           bad.raw))
                return
            text = lines[drop.header_row - 1].decode("utf-8")
            if "\ufeff" in text:  # the BOM a file starts with is already gone: this one is inside the file
                self.entries.append(_entry(self.name, None, f"header line {drop.header_row} holds a byte order mark "
                                           "(U+FEFF): the file is not read; export it again as one file, without a "
                                           "byte order mark inside", text.replace("\ufeff", "\\ufeff")))
                return
            header = self._header(text)
            self.width, self.keep = len(header), drop._positions(header)
            self.flagged = {k: v for k, v in self.flagged.items() if k > drop.header_row}  # titles are not data
            rest, line = (lines[drop.header_row] if len(lines) > drop.header_row else b""), drop.header_row + 1
            for text, bad in chunks:
                self.flagged.update(bad)
                tables, rest, line = self._parse(rest + text if rest else text, line, final=False)
                yield from tables
            tables, _, _ = self._parse(rest, line, final=True)
            yield from tables
        except UnreadableText as exc:
            self.entries.append(_entry(self.name, None, str(exc)))
            return
        for bad_line in self.flagged.values():  # every unreadable line is reported, placed in a row or not
            self.entries.append(_entry(self.name, bad_line.line, bad_line.reason, bad_line.raw))

    def _header(self, text: str) -> list[str]:
        quoting = {"quotechar": self.drop.quote} if self.drop.quote else {"quoting": csv.QUOTE_NONE}
        return [c.strip() for c in next(csv.reader([text.rstrip("\r")], delimiter=self.drop.delimiter, **quoting))]

    def _read(self, buf: bytes) -> tuple[pa.Table, list[tuple[int, int, str]]]:
        """Arrow's parse of ``buf``: the good rows, and (row number, fields, text) of each row of a wrong width."""
        invalid: list[tuple[int, int, str]] = []

        def wrong(row: Any) -> str:
            invalid.append((row.number, row.actual_columns, row.text))
            return "skip"

        names = [f"c{i}" for i in range(self.width)]
        try:
            table = pcsv.read_csv(
                pa.py_buffer(buf),
                # One block, one thread: Arrow then numbers the rows, and the numbers give every row its line.
                read_options=pcsv.ReadOptions(column_names=names, use_threads=False, block_size=len(buf) + 1),
                parse_options=pcsv.ParseOptions(delimiter=self.drop.delimiter, quote_char=self.drop.quote or False,
                                                newlines_in_values=bool(self.quote), ignore_empty_lines=False,
                                                invalid_row_handler=wrong),
                convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())))
        except pa.ArrowInvalid as exc:
            raise SourceError(f"{self.name}: CSV parser failed: {exc}") from exc
        return table, invalid

    def _parse(self, buf: bytes, line: int, *, final: bool) -> tuple[list[pa.Table], bytes, int]:
        """Tables of the complete records in ``buf`` (line ``line`` on); the incomplete rest and its first line."""
        out: list[pa.Table] = []
        n_lines = 0
        while buf:
            table, invalid = self._read(buf)
            n_lines = line_breaks(buf) + (not buf.endswith(b"\n"))
            if not table.num_rows and not invalid:
                break
            starts, spans, wrong = self._lines(table, invalid, buf, n_lines, line)
            n = stop = len(starts)
            # Resync points: a multi-line row with a wrong field count, or a record running too long.
            suspect = (wrong & (spans > 1)) | (spans > self.drop.max_record_lines)
            last = buf[_last_lines(buf, int(spans[-1])):]
            if self._open(last, int(spans[-1])):
                if final or spans[-1] > self.drop.max_record_lines or len(last) > MAX_RECORD_BYTES:
                    suspect[-1] = True
                else:
                    stop = n - 1  # its quoted value goes on in the next chunk
            resync = np.flatnonzero(suspect[:stop])
            if resync.size:
                stop = int(resync[0])
            out += self._emit(table, invalid, starts, spans, wrong, stop, buf, line)
            if not resync.size:
                if stop < n:
                    return out, last, int(starts[-1])
                break
            # Quarantine the line that opened the quote, and read on from the line after it.
            at = int(starts[stop])
            begin = _nth_line(buf, at - line)
            end = _nth_line(buf, at - line + 1) if at - line + 1 < n_lines else len(buf)
            self._quarantine(at, at + 1, "unterminated quote", buf[begin:end].decode("utf-8").rstrip("\r\n"))
            buf, line = buf[end:], at + 1
        return out, b"", line + n_lines if buf else line

    def _open(self, last: bytes, span: int) -> bool:
        """Whether the last record of a buffer ends inside a quoted value."""
        if not self.quote:
            return False
        if span > 1 and len(last) > MAX_RECORD_BYTES:  # no need to scan it to know
            return True
        return self.quote in last and _ends_quoted(last.decode("utf-8"), self.drop.delimiter, self.drop.quote or "")

    def _lines(self, table: pa.Table, invalid: list[tuple[int, int, str]], buf: bytes, n_lines: int,
               line: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """First line and line count of every parsed row (good or wrong, in file order), and which were wrong."""
        n = table.num_rows + len(invalid)
        wrong = np.zeros(n, dtype=bool)
        wrong[[number - 1 for number, _, _ in invalid]] = True
        spans = np.ones(n, dtype=np.int64)
        if self.quote and self.quote in buf:  # only quoted values hold line breaks
            if table.num_rows:
                breaks = [pc.count_substring(col, "\n").to_numpy(zero_copy_only=False) for col in table.columns]
                spans[~wrong] += np.sum(breaks, axis=0)
            if invalid:
                spans[wrong] += np.array([text.count("\n") for _, _, text in invalid], dtype=np.int64)
        # The last row ends where the buffer does: a quoted value still open there holds the final line break too.
        spans[-1] = n_lines - spans[:-1].sum()
        if spans[-1] < 1:
            raise SourceError(f"{self.name}: rows and lines disagree after line {line}")
        starts = line + np.concatenate(([0], np.cumsum(spans[:-1])))
        return starts, spans, wrong

    def _emit(self, table: pa.Table, invalid: list[tuple[int, int, str]], starts: np.ndarray, spans: np.ndarray,
              wrong: np.ndarray, stop: int, buf: bytes, line: int) -> list[pa.Table]:
        """The good rows among the first ``stop`` parsed rows, with their lines; the others quarantined."""
        if stop == 0:
            return []
        good = np.flatnonzero(~wrong[:stop])
        keep = np.ones(len(good), dtype=bool)
        end_line = int(starts[stop - 1] + spans[stop - 1])
        # Rows holding unreadable bytes: the decoder flagged their lines.
        flagged = [k for k in self.flagged if starts[0] <= k < end_line]
        owners = set(np.searchsorted(starts[:stop], flagged, "right").tolist()) if flagged else set()
        for row in sorted(r - 1 for r in owners if not wrong[r - 1]):
            keep[np.searchsorted(good, row)] = False
            self._quarantine(int(starts[row]), int(starts[row] + spans[row]))
        for (_, fields, text), row in zip(invalid, np.flatnonzero(wrong[:stop])):
            self._quarantine(int(starts[row]), int(starts[row] + spans[row]),
                             f"wrong number of fields: expected {self.width}, got {fields}", text)
        # Arrow reads a blank line as a row of empty values; only rows without a character can be one.
        lengths = [pc.binary_length(col).to_numpy(zero_copy_only=False)[:len(good)] for col in table.columns]
        empty = np.flatnonzero(np.sum(lengths, axis=0) == 0)
        if empty.size:
            keep[empty] &= ~_blank(buf, line, starts[good][empty], spans[good][empty])
        kept = table.slice(0, len(good))
        if not keep.all():
            kept = kept.filter(pa.array(keep))
        lines = pa.array(starts[good][keep], pa.int64())
        columns = [*(kept.column(i) for i in self.keep), lines]
        return [pa.table(columns, names=[f"k{i}" for i in range(len(columns))])]

    def _quarantine(self, at: int, end: int, reason: str = "", raw: str = "") -> None:
        """One quarantined row on lines ``at`` to ``end`` (excluded), with the reasons of its unreadable lines."""
        flags = [self.flagged.pop(k) for k in range(at, end) if k in self.flagged]
        if flags:  # the bytes as they are in the file, not the decoder's stand-ins
            reason = "; ".join([*dict.fromkeys(flag.reason for flag in flags), *([reason] if reason else [])])
            raw = flags[0].raw
        self.entries.append(_entry(self.name, at, reason, raw))


def from_config(source: SourceConfig, samples_dir: Path) -> FileDropConnector:
    """The connector of a ``file_drop`` source: its URL (``file://`` path) is the folder, its options as above."""
    unknown = sorted(set(source.options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"source {source.name!r}: unknown file_drop options {unknown}; known: {', '.join(OPTIONS)}")
    location = source.location(samples_dir) or ""
    if not location:
        raise ConfigError(f"source {source.name!r}: a file_drop source needs a url (file://<folder>)")
    # The update-time column, when configured, is landed too: mapping reads it as the record's source time.
    columns = [*([source.watermark] if source.watermark else []), *source.columns]
    return FileDropConnector(Path(location.removeprefix("file://")), key=source.key, columns=columns,
                             batch_size=source.batch_size, **source.options)
