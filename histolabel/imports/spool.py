"""The on-disk spool imported objects wait in between the streamed read and the rasteriser.

Nothing here grows with the object count in memory: each object's geometry (WKB), external
id and fixed-size record go to local files as they arrive, a bounded buffer at a time. The
records are also filed by the block rows their box touches (so the rasteriser reads one row
band at a time) and their id hashes into 256 buckets (so the duplicate-id check sorts one
bucket at a time). Files are read back with plain reads, never memory maps, whose pages
would stay resident in the process.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import shapely

from histolabel.imports.errors import ImportRefused
from histolabel.imports.polygons import RawObject
from histolabel.slides.pyramid import SHARD

# One object: its 0-based spool position, 1-based file position, WKB extent, category code
# (-1: unclassified) and box at the raster level (rows y0..y1, cols x0..x1, ends exclusive).
RECORD = np.dtype(
    [("obj", "<i8"), ("index", "<i8"), ("offset", "<i8"), ("size", "<i8"), ("code", "<i2"),
     ("y0", "<i8"), ("x0", "<i8"), ("y1", "<i8"), ("x1", "<i8")]
)  # fmt: skip
HASH = np.dtype([("hash", "<i8"), ("obj", "<i8")])
BUFFER = 16_384  # records held before they are filed
BUCKETS = 256
READ = 65_536  # records read back at a time


def read_records(path: Path, dtype: np.dtype[Any] = RECORD, count: int = READ) -> Iterator[np.ndarray]:
    """A record file, `count` records at a time."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        while True:
            raw = fh.read(count * dtype.itemsize)
            if not raw:
                return
            yield np.frombuffer(raw, dtype)


class Spool:
    """Kept objects in file order, on local disk (see the module's docstring)."""

    def __init__(self, workdir: Path, factor: int, shape: tuple[int, int]) -> None:
        self.dir = workdir
        self.path = workdir / "objects.wkb"
        self.ids_path = workdir / "external_ids.jsonl"
        self.records_path = workdir / "objects.rec"
        (workdir / "rows").mkdir(exist_ok=True)
        (workdir / "hashes").mkdir(exist_ok=True)
        self._fh = self.path.open("wb")
        self._ids = self.ids_path.open("w", encoding="utf-8")
        self._records = self.records_path.open("wb")
        self._row_files: dict[str, IO[bytes]] = {}
        self._hash_files: dict[str, IO[bytes]] = {}
        self.factor, self.shape = factor, shape
        self.rows = max(1, -(-shape[0] // SHARD))
        self._buf = np.zeros(BUFFER, RECORD)
        self._hash_buf = np.zeros(BUFFER, HASH)
        self._k = 0
        self._count = 0
        self._offset = 0
        self.category_names: list[str] = []  # code -> name (code -1: unclassified)
        self.category_colors: dict[str, str | None] = {}
        self._code_of: dict[str, int] = {}

    def add(self, obj: RawObject, geom: Any) -> None:
        raw = shapely.to_wkb(geom)
        self._fh.write(raw)
        x0, y0, x1, y1 = geom.bounds
        f, (h, w) = self.factor, self.shape
        ry0, rx0 = max(0, int(np.floor(y0 / f))), max(0, int(np.floor(x0 / f)))
        ry1, rx1 = min(h, max(int(np.ceil(y1 / f)), ry0 + 1)), min(w, max(int(np.ceil(x1 / f)), rx0 + 1))
        code = -1
        if obj.category is not None:
            code = self._code_of.get(obj.category, -1)
            if code < 0:
                if len(self.category_names) >= 32000:
                    raise ImportRefused("more than 32000 distinct classifications", obj.where)
                code = self._code_of[obj.category] = len(self.category_names)
                self.category_names.append(obj.category)
            if self.category_colors.get(obj.category) is None:
                self.category_colors[obj.category] = obj.color
        self._buf[self._k] = (self._count, obj.index, self._offset, len(raw), code, ry0, rx0, ry1, rx1)
        digest = hashlib.blake2b(obj.external_id.encode(), digest_size=8).digest()
        self._hash_buf[self._k] = (int.from_bytes(digest, "little", signed=True), self._count)
        self._ids.write(json.dumps(obj.external_id) + "\n")
        self._offset += len(raw)
        self._count += 1
        self._k += 1
        if self._k == BUFFER:
            self._flush()

    def _flush(self) -> None:
        recs, hashes = self._buf[: self._k], self._hash_buf[: self._k]
        self._k = 0
        if not len(recs):
            return
        self._records.write(recs.tobytes())
        first, last = recs["y0"] // SHARD, (recs["y1"] - 1) // SHARD
        for row in range(int(first.min()), int(last.max()) + 1):
            part = recs[(first <= row) & (last >= row)]
            if len(part):
                self._file(self._row_files, self.dir / "rows" / f"{row}.rec").write(part.tobytes())
        bucket = (hashes["hash"] >> 56) & (BUCKETS - 1)
        order = np.argsort(bucket, kind="stable")
        cuts = np.searchsorted(bucket[order], np.arange(BUCKETS + 1))
        for b in np.flatnonzero(np.diff(cuts)).tolist():
            part = hashes[order[cuts[b] : cuts[b + 1]]]
            self._file(self._hash_files, self.dir / "hashes" / f"{b}.bin").write(part.tobytes())

    @staticmethod
    def _file(files: dict[str, IO[bytes]], path: Path) -> IO[bytes]:
        key = str(path)
        if key not in files:
            files[key] = path.open("ab")
        return files[key]

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes of WKB spooled."""
        return self._offset

    def close(self) -> None:
        """Finish the files and refuse duplicate ids, naming both objects."""
        self._flush()
        self._ids.close()
        for fh in (self._fh, self._records, *self._row_files.values(), *self._hash_files.values()):
            fh.close()
        self._row_files, self._hash_files = {}, {}
        for b in range(BUCKETS):
            path = self.dir / "hashes" / f"{b}.bin"
            if not path.exists():
                continue
            hashes = np.fromfile(path, HASH)
            hashes.sort(order=("hash", "obj"))
            same = np.flatnonzero(np.diff(hashes["hash"]) == 0)
            if same.size:
                a, b2 = int(hashes["obj"][same[0]]), int(hashes["obj"][same[0] + 1])
                self._refuse_duplicate(a, b2)

    def _refuse_duplicate(self, a: int, b: int) -> None:
        dup = next(e for i, e in enumerate(self.external_ids()) if i == b)
        index_a, index_b = (int(self.record(i)["index"]) for i in (a, b))
        raise ImportRefused(
            f"has the same id {dup!r} as object {index_a}; ids must be unique", f"object {index_b}"
        )

    def record(self, i: int) -> np.void:
        with self.records_path.open("rb") as fh:
            fh.seek(i * RECORD.itemsize)
            return np.frombuffer(fh.read(RECORD.itemsize), RECORD)[0]

    def records(self) -> Iterator[np.ndarray]:
        """Every object's record in spool order, a bounded chunk at a time."""
        return read_records(self.records_path)

    def row(self, row: int) -> np.ndarray:
        """Records of the objects whose box touches block row `row`, in spool order."""
        path = self.dir / "rows" / f"{row}.rec"
        return np.fromfile(path, RECORD) if path.exists() else np.zeros(0, RECORD)

    def external_ids(self) -> Iterator[str]:
        with self.ids_path.open(encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)

    def geometries(self, recs: np.ndarray) -> np.ndarray:
        """Shapely geometries of `recs`, read from the WKB file (positioned reads)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            raw = [os.pread(fd, int(s), int(o)) for o, s in zip(recs["offset"], recs["size"], strict=True)]
        finally:
            os.close(fd)
        return shapely.from_wkb(np.array(raw, dtype=object)) if raw else np.zeros(0, object)

    def wkb(self) -> Iterator[tuple[np.ndarray, list[bytes]]]:
        """(records, their WKB) in spool order, a chunk at a time."""
        with self.path.open("rb") as fh:
            for recs in self.records():
                blob = fh.read(int(recs["size"].sum()))
                ends = np.cumsum(recs["size"])
                starts = ends - recs["size"]
                yield recs, [blob[int(s) : int(e)] for s, e in zip(starts, ends, strict=True)]
