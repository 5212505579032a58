"""Read the objects of a huge JSON document one at a time (the standard library's decoder on a
sliding window), so a GeoJSON of a million nuclei never sits in memory whole."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import IO, Any

from histolabel.imports.errors import ImportRefused

CHUNK = 1 << 20  # characters decoded per read
_WS = " \t\n\r"


class Cursor:
    """A position in a JSON text read a chunk at a time; values are decoded whole."""

    def __init__(self, fh: IO[bytes], name: str) -> None:
        self.fh, self.name = fh, name
        self._decode = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
        self.buf, self.pos, self.consumed, self.eof = "", 0, 0, False
        self._decoder = json.JSONDecoder()

    def _more(self) -> bool:
        if self.eof:
            return False
        try:
            raw = self.fh.read(CHUNK)
            text = self._decode.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            raise ImportRefused(f"not UTF-8 text near byte {self.consumed + exc.start}", self.name) from None
        self.eof = not raw
        self.buf = self.buf[self.pos :] + text
        self.consumed += self.pos
        self.pos = 0
        return True

    def where(self) -> int:
        return self.consumed + self.pos

    def peek(self) -> str:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def expect(self, chars: str, what: str) -> str:
        ch = self.peek()
        if not ch or ch not in chars:
            found = repr(ch) if ch else "the end of the file"
            raise ImportRefused(f"invalid JSON at character {self.where()}: expected {what}, found {found}",
                                self.name)  # fmt: skip
        self.pos += 1
        return ch

    def value(self, what: str = "a value") -> Any:
        self.peek()
        while True:
            try:
                obj, end = self._decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self._more():
                    continue
                raise ImportRefused(
                    f"invalid JSON at character {self.consumed + exc.pos} in {what}: {exc.msg}", self.name
                ) from None
            # A number cut by the window would decode short: make sure something follows it.
            if end == len(self.buf) and self._more():
                continue
            self.pos = end
            return obj

    def fields(self) -> Iterator[str]:
        """The keys of the object starting here; the caller consumes each value."""
        self.expect("{", "an object")
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            key = self.value("an object key")
            if not isinstance(key, str):
                raise ImportRefused(f"invalid JSON at character {self.where()}: keys must be strings",
                                    self.name)  # fmt: skip
            self.expect(":", "':'")
            yield key
            if self.expect(",}", "',' or '}'") == "}":
                return

    def items(self, what: str) -> Iterator[Any]:
        """The values of the array starting here, one decoded at a time."""
        self.expect("[", "an array")
        if self.peek() == "]":
            self.pos += 1
            return
        n = 0
        while True:
            n += 1
            yield self.value(f"{what} {n}")
            if self.expect(",]", "',' or ']'") == "]":
                return

    def end(self) -> None:
        if self.peek():
            raise ImportRefused(f"invalid JSON at character {self.where()}: extra data after the document",
                                self.name)  # fmt: skip
