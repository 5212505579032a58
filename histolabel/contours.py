"""The outer boundary of a binary region, traced by marching squares in compiled code.

The same contour as `skimage.measure.find_contours(padded, 0.5)` (the default low connectivity:
regions touching only at a corner stay apart), with its segments directed as skimage directs
them: vertices at the midpoints of the pixel edges between inside and outside, so neighbouring
regions' outlines touch without overlap. skimage assembles segments into contours in Python,
about 0.9 ms of a superpixel's export; here every boundary vertex points to the next, the
cycles are walked in one pass, and points in the middle of a straight run are left out: an
outline costs 0.15 ms with its crop and list conversion (bench/scale_jobs.py exports through it)."""

from __future__ import annotations

import numpy as np

from histolabel.jit import njit

# For each 2x2 case (ul=1, ur=2, ll=4, lr=8 set when inside), skimage's directed segments
# between the square's edge midpoints (0 top, 1 bottom, 2 left, 3 right); -1 ends a list.
_SEGMENTS = np.array(
    [
        [-1, -1, -1, -1],
        [0, 2, -1, -1],  # 1: top -> left
        [3, 0, -1, -1],  # 2: right -> top
        [3, 2, -1, -1],
        [2, 1, -1, -1],
        [0, 1, -1, -1],
        [3, 0, 2, 1],  # 6: the saddle, corners kept apart
        [3, 1, -1, -1],
        [1, 3, -1, -1],
        [0, 2, 1, 3],  # 9: the saddle, corners kept apart
        [1, 0, -1, -1],
        [1, 2, -1, -1],
        [2, 3, -1, -1],
        [0, 3, -1, -1],
        [2, 0, -1, -1],
        [-1, -1, -1, -1],
    ],
    np.int64,
)


@njit(cache=True, nogil=True)
def _outer_ring(mask: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """(k, 2) (row, col) of the longest contour in the zero-padded frame of `mask`, straight
    runs' inner points left out (all points kept when fewer than three turn)."""
    h, w = mask.shape[0] + 2, mask.shape[1] + 2
    padded = np.zeros((h, w), np.uint8)
    padded[1:-1, 1:-1] = mask
    # Vertex ids: midpoints of vertical neighbours' edges (r + 0.5, c), then of horizontal
    # neighbours' edges (r, c + 0.5).
    across = (h - 1) * w
    succ = np.full(across + h * (w - 1), -1, np.int64)
    firsts = np.empty(2 * h * w, np.int64)  # each segment's start, in skimage's raster order
    nfirst = 0
    for r in range(h - 1):
        for c in range(w - 1):
            case = padded[r, c] + 2 * padded[r, c + 1] + 4 * padded[r + 1, c] + 8 * padded[r + 1, c + 1]
            if case == 0 or case == 15:
                continue
            ends = (across + r * (w - 1) + c, across + (r + 1) * (w - 1) + c, r * w + c, r * w + c + 1)
            for k in range(0, 4, 2):
                a = segments[case, k]
                if a < 0:
                    break
                start, stop = ends[a], ends[segments[case, k + 1]]
                succ[start] = stop
                firsts[nfirst] = start
                nfirst += 1
    seen = np.zeros(succ.shape[0], np.bool_)
    best_start, best_len = -1, 0
    for i in range(nfirst):
        v = firsts[i]
        if seen[v]:
            continue
        n = 0
        while v >= 0 and not seen[v]:
            seen[v] = True
            n += 1
            v = succ[v]
        if n > best_len:
            best_start, best_len = firsts[i], n
    out = np.empty((best_len, 2), np.float64)
    v = best_start
    for i in range(best_len):
        if v < across:
            out[i, 0], out[i, 1] = v // w + 0.5, v % w
        else:
            k = v - across
            out[i, 0], out[i, 1] = k // (w - 1), k % (w - 1) + 0.5
        v = succ[v]
    if best_len < 3:
        return out
    turns = np.zeros(best_len, np.bool_)
    count = 0
    for i in range(best_len):
        p, q, s = out[i - 1], out[i], out[(i + 1) % best_len]
        cross = (q[0] - p[0]) * (s[1] - q[1]) - (q[1] - p[1]) * (s[0] - q[0])
        if cross != 0:
            turns[i] = True
            count += 1
    return out[turns] if count >= 3 else out


def outer_ring(mask: np.ndarray) -> np.ndarray:
    """(k, 2) (row, col), in the frame of `mask` padded by one pixel, of the longest contour
    around its True pixels; empty when there are none."""
    return _outer_ring(np.ascontiguousarray(mask, np.uint8), _SEGMENTS)
