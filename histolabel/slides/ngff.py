"""OME-NGFF 0.5 metadata in one place: the writer of the `multiscales`, image and image-label
attributes our pyramids carry, and the reader every consumer (segment, import, the API, export)
uses instead of indexing `attrs["ome"]["multiscales"][0]...` itself. Shaped after ome-zarr-py's
`format.py` (what a version writes) and `reader.py` (what a group holds). The reader also takes
NGFF 0.4, whose keys sit at the top level instead of under "ome"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from histolabel.slides.pyramid import PyramidInfo

NGFF_VERSION = "0.5"


class NgffError(ValueError):
    """The attributes are not the NGFF metadata a reader asked for."""


# ---- writing ----------------------------------------------------------------------------------


def multiscales(
    name: str, n_levels: int, mpp: float | None, channel: bool = True, first_factor: int = 1
) -> dict[str, Any]:
    """The `multiscales` entry: axes c,y,x, scale 2^k (times microns/px when known)."""
    unit = {"unit": "micrometer"} if mpp else {}
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space", **unit},
        {"name": "x", "type": "space", **unit},
    ]
    base = mpp or 1.0
    datasets = []
    for k in range(n_levels):
        s = base * first_factor * 2**k
        scale = {"type": "scale", "scale": [1.0, s, s]}
        datasets.append({"path": str(k), "coordinateTransformations": [scale]})
    return {"name": name, "axes": axes, "datasets": datasets, "type": "mean" if channel else "nearest"}


def image_attributes(info: PyramidInfo, name: str, source_format: str) -> dict[str, Any]:
    return {
        "ome": {
            "version": NGFF_VERSION,
            "multiscales": [multiscales(name, info.levels, info.mpp)],
            "omero": {
                "channels": [
                    {"label": c, "color": color, "window": {"start": 0, "end": 255, "min": 0, "max": 255}}
                    for c, color in (("R", "FF0000"), ("G", "00FF00"), ("B", "0000FF"))
                ],
                "rdefs": {"model": "color"},
            },
        },
        "histolabel": {
            "width": info.width,
            "height": info.height,
            "mpp": info.mpp,
            "magnification": info.magnification,
            "source_format": source_format,
        },
    }


def label_attributes(
    name: str, n_levels: int, mpp: float | None, first_factor: int, source_level: int
) -> dict[str, Any]:
    """Image-label metadata for a label pyramid whose level 0 is image level `source_level`."""
    ms = multiscales(name, n_levels, mpp, channel=False, first_factor=first_factor)
    return {
        "ome": {
            "version": NGFF_VERSION,
            "multiscales": [ms],
            "image-label": {"version": NGFF_VERSION, "source": {"image": "../../"}},
        },
        "histolabel": {"image_level": source_level},
    }


def labels_attributes(names: set[str]) -> dict[str, Any]:
    """The `labels/` group's list of label images."""
    return {"ome": {"version": NGFF_VERSION, "labels": sorted(names)}}


# ---- reading ----------------------------------------------------------------------------------


def _ome(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    ome = attrs.get("ome")
    return ome if isinstance(ome, Mapping) else attrs  # 0.4 keeps the keys at the top level


@dataclass(frozen=True)
class Multiscale:
    """The first `multiscales` entry of a group: its levels' array paths, finest first."""

    name: str | None
    paths: tuple[str, ...]
    scales: tuple[tuple[float, ...], ...]
    axes: tuple[str, ...]
    is_label: bool

    @property
    def levels(self) -> int:
        return len(self.paths)


def read_multiscale(attrs: Mapping[str, Any]) -> Multiscale:
    ome = _ome(attrs)
    entries = ome.get("multiscales")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], Mapping):
        raise NgffError("has no NGFF multiscales metadata")
    entry = entries[0]
    datasets = entry.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise NgffError("its multiscales entry lists no datasets")
    paths, scales = [], []
    for d in datasets:
        if not isinstance(d, Mapping) or not isinstance(d.get("path"), str):
            raise NgffError("a multiscales dataset has no path")
        paths.append(d["path"])
        scale = next(
            (t.get("scale") for t in d.get("coordinateTransformations", []) if t.get("type") == "scale"), None
        )
        scales.append(tuple(float(v) for v in scale) if isinstance(scale, list) else ())
    axes = tuple(a.get("name", "") if isinstance(a, Mapping) else str(a) for a in entry.get("axes", []))
    return Multiscale(entry.get("name"), tuple(paths), tuple(scales), axes, "image-label" in ome)


def label_names(attrs: Mapping[str, Any]) -> list[str]:
    """The label images a `labels/` group (or an image's own attributes) lists."""
    names = _ome(attrs).get("labels")
    return [str(n) for n in names] if isinstance(names, list) else []
