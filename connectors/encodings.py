"""Text encodings of department files: checking a configured one, detecting one, decoding line-aligned chunks."""

from __future__ import annotations

import codecs
import re
import threading
from dataclasses import dataclass

import numpy as np

from hub.errors import ConfigError, SourceError

AUTO = "auto"
MARK = "\ufffd"  # stands in for bytes that could not be read; the row holding it is quarantined, never landed
# Codecs whose multibyte characters are built from ASCII bytes (shift states): a byte-level line split breaks them.
_STATEFUL = ("utf-7", "hz", "iso2022")
_BARE_CR = re.compile("\r(?!\n)")
_MARKING = "hub-file-drop-mark"
_marked = threading.local()  # where the error handler notes the bad bytes of the decode running in this thread


def _mark(exc: UnicodeError) -> tuple[str, int]:
    # Called by the C decoder at each bad byte, so a chunk is decoded in one pass however many it holds.
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    end = exc.end
    newline = exc.object.find(b"\n", exc.start, end)
    if newline >= 0:  # a truncated character must not swallow the line break after it (GB18030 reports up to 4 bytes)
        end = max(newline, exc.start + 1)
    _marked.starts.append(exc.start)
    return MARK, end


codecs.register_error(_MARKING, _mark)


def line_breaks(data: bytes) -> int:
    """How many LF bytes ``data`` holds (numpy counts about three times faster than bytes.count)."""
    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))


def checked(name: str) -> str:
    """The canonical name of a codec files can be read line by line with, or ``auto``; ConfigError otherwise."""
    if name == AUTO:
        return AUTO
    try:
        canonical = codecs.lookup(name).name
    except LookupError as exc:
        raise ConfigError(f"unknown encoding {name!r}") from exc
    if canonical == "utf-8-sig":
        return "utf-8"  # a BOM is dropped for every UTF-8 file
    try:
        ascii_compatible = '\n\r",'.encode(canonical) == b'\n\r",'
    except UnicodeEncodeError:
        ascii_compatible = False
    if not ascii_compatible or canonical.startswith(_STATEFUL):
        raise ConfigError(f"encoding {name!r} cannot be read line by line; use utf-8, gbk or gb18030")
    return canonical


def detect(chunk: bytes) -> str:
    """``utf-8`` when the chunk is UTF-8 text (bar the odd corrupted byte), else ``gb18030``, the superset of GBK."""
    text = chunk.decode("utf-8", "replace")
    bad = text.count(MARK)
    if not bad:
        return "utf-8"
    wide = len(text) - len(text.encode("ascii", "ignore"))  # non-ASCII characters, bad ones included
    # GBK read as UTF-8 is mostly invalid; a UTF-8 file with one corrupted byte must not turn into mojibake.
    return "utf-8" if bad * 4 <= wide else "gb18030"


def shown(raw: bytes, encoding: str) -> str:
    """A line as a steward reads it: decoded where possible, bad bytes as ``\\x..`` escapes, at most 200 characters."""
    return raw.rstrip(b"\r\n").decode(encoding, "backslashreplace")[:200]


class UnreadableText(SourceError):
    """A whole file cannot be read as text in this encoding (the file is quarantined whole, its source goes on)."""


@dataclass(frozen=True)
class BadLine:
    """A physical line holding bytes that cannot be read as text."""

    line: int
    reason: str
    raw: str


class LineDecoder:
    """Decodes one file's line-aligned chunks to UTF-8, keeping every line; unreadable bytes become MARK."""

    def __init__(self, encoding: str):
        self.encoding: str | None = None if encoding == AUTO else encoding  # auto: the first non-ASCII chunk decides
        self.line = 1  # physical line number of the next chunk's first line
        self._first = True
        self._counted = (0, 0)  # (offset, line breaks before it) in the current chunk: errors are met in order

    def decode(self, chunk: bytes) -> tuple[bytes, dict[int, BadLine]]:
        """The chunk as UTF-8 with the same lines, and the lines that had unreadable bytes."""
        if self._first:
            self._first = False
            if chunk.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise UnreadableText("UTF-16 text (byte order mark); export the file as UTF-8 or GBK")
            if chunk.startswith(codecs.BOM_UTF8) and self.encoding in (None, "utf-8"):
                chunk, self.encoding = chunk[len(codecs.BOM_UTF8):], "utf-8"
            elif chunk.startswith(codecs.BOM_UTF8):  # read as GBK its header would be mojibake and every row with it
                raise UnreadableText(f"the file starts with a UTF-8 byte order mark, but options.encoding is "
                                     f"{self.encoding}: export it as {self.encoding}, or set options.encoding to utf-8 "
                                     "(or auto)")
        if self.encoding is None and not chunk.isascii():
            self.encoding = detect(chunk)
        encoding = self.encoding or "ascii"
        bad: dict[int, BadLine] = {}
        self._counted = (0, 0)
        _marked.starts = starts = []
        text = chunk.decode(encoding, _MARKING)
        for at in starts:
            self._flag(bad, chunk, at, f"undecodable bytes for {encoding}", encoding)
        # Arrow's parser ends a row at a lone CR, the line numbers here count LFs: such lines cannot be placed.
        if b"\r" in chunk:
            data = np.frombuffer(chunk, np.uint8)
            cr = np.flatnonzero(data == 13)
            bare = cr[data[np.minimum(cr + 1, len(data) - 1)] != 10]
            if bare.size:
                self._counted = (0, 0)
                for at in bare.tolist():
                    self._flag(bad, chunk, at, "carriage return inside a line", encoding)
                text = _BARE_CR.sub(MARK, text)
        self.line += line_breaks(chunk)
        return (chunk if encoding in ("utf-8", "ascii") and not bad else text.encode("utf-8")), bad

    def _flag(self, bad: dict[int, BadLine], chunk: bytes, at: int, reason: str, encoding: str) -> None:
        offset, breaks = self._counted if self._counted[0] <= at else (0, 0)
        breaks += chunk.count(b"\n", offset, at)
        self._counted = (at, breaks)
        line = self.line + breaks
        if line in bad:
            if reason not in bad[line].reason:
                bad[line] = BadLine(line, f"{bad[line].reason}; {reason}", bad[line].raw)
            return
        begin, end = chunk.rfind(b"\n", 0, at) + 1, chunk.find(b"\n", at)
        bad[line] = BadLine(line, reason, shown(chunk[begin:None if end < 0 else end], encoding))
