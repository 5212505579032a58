"""The tile grid of a tiled segmentation: cores, phases, windows and dependencies.

Tiles are coloured by the parity of their grid position into four phases, (even, even),
(even, odd), (odd, even), (odd, odd). A tile waits only for its earlier-phase neighbours,
so tiles of the same phase (never adjacent) run in parallel, and every tile sees exactly
the same claimed pixels whatever the number of workers: results do not depend on it.

Each tile's window is at most its core plus a halo on every side (two for phases after
the first, which must reach what earlier tiles left near their edges); the segmenter shrinks
it to the free (unclaimed) tissue connected to the core, so later phases, whose
neighbours already claimed most of the halo, pay for little more than their core.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Tile:
    index: int
    row: int
    col: int
    phase: int
    core: tuple[int, int, int, int]  # y0, x0, y1, x1
    window: tuple[int, int, int, int]


@dataclass(frozen=True)
class Grid:
    height: int
    width: int
    tile: int
    halo: int

    def __post_init__(self) -> None:
        if self.tile < 4 * self.halo:
            raise ValueError(f"tile size {self.tile} must be at least four times the halo {self.halo}")
        if self.height <= 0 or self.width <= 0:
            raise ValueError("image has zero size")

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile)

    @property
    def cols(self) -> int:
        return -(-self.width // self.tile)

    def tiles(self) -> list[Tile]:
        return list(self._tiles)

    @cached_property
    def _tiles(self) -> tuple[Tile, ...]:
        # built once per grid: every per-tile question (dependencies, blocks) indexes into it
        out = []
        for r in range(self.rows):
            for c in range(self.cols):
                phase = (r % 2) * 2 + (c % 2)
                y0, x0 = r * self.tile, c * self.tile
                y1, x1 = min(y0 + self.tile, self.height), min(x0 + self.tile, self.width)
                h = self.halo * (1 if phase == 0 else 2)
                window = (max(0, y0 - h), max(0, x0 - h), min(self.height, y1 + h), min(self.width, x1 + h))
                out.append(Tile(r * self.cols + c, r, c, phase, (y0, x0, y1, x1), window))
        return tuple(out)

    def neighbours(self, tile: Tile) -> list[int]:
        """Indices of the (up to eight) tiles around `tile`."""
        out = []
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                r, c = tile.row + dr, tile.col + dc
                if (dr or dc) and 0 <= r < self.rows and 0 <= c < self.cols:
                    out.append(r * self.cols + c)
        return out

    def depends_on(self, tile: Tile) -> list[int]:
        """Neighbours of an earlier phase: they must finish before `tile` starts."""
        tiles = self._tiles
        return [n for n in self.neighbours(tile) if tiles[n].phase < tile.phase]

    def overlapping(self, y0: int, x0: int, y1: int, x1: int) -> list[int]:
        """Indices, in order, of the tiles whose window may overlap the box: windows reach at
        most two halos past their core, so only the tile rows and columns that far out count."""
        reach = 2 * self.halo
        r0, r1 = max(0, (y0 - reach) // self.tile), min(self.rows - 1, (y1 - 1 + reach) // self.tile)
        c0, c1 = max(0, (x0 - reach) // self.tile), min(self.cols - 1, (x1 - 1 + reach) // self.tile)
        return [r * self.cols + c for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
