"""Shared set-up of the import tests: a project whose slide is a real MoNuSeg image ingested
through `histolabel slides add`, and its nuclei written out as QuPath would export them."""

from __future__ import annotations

import argparse
import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from histolabel.composition import service_from_env
from histolabel.config import Settings
from histolabel.events.catalogue import Actor

OWNER = Actor(user="olivia", site="nyc")
IMAGE = "TCGA-2Z-A9J9-01A-01-TS1"
SLIDE = "nuclei"


def monuseg_polygons(xml: Path) -> list[list[list[float]]]:
    """Each MoNuSeg region's vertices as a closed [x, y] ring (level-0 px)."""
    rings = []
    for region in ET.parse(xml).getroot().iter("Region"):
        ring = [[float(v.get("X", 0)), float(v.get("Y", 0))] for v in region.iter("Vertex")]
        if ring and ring[0] != ring[-1]:
            ring.append(ring[0])
        rings.append(ring)
    return rings


def qupath_geojson(
    rings: list[list[list[float]]], classes: list[tuple[str, list[int]] | None]
) -> dict[str, Any]:
    """A FeatureCollection as QuPath 0.4+ writes one: a UUID id per object, objectType and an
    optional classification {name, color [r, g, b]}."""
    features = []
    for i, ring in enumerate(rings):
        props: dict[str, Any] = {"objectType": "detection", "isLocked": False}
        if classes[i] is not None:
            name, color = classes[i]  # type: ignore[misc]
            props["classification"] = {"name": name, "color": color}
        features.append(
            {"type": "Feature", "id": str(uuid.UUID(int=i + 1)), "geometry": {"type": "Polygon",
             "coordinates": [ring]}, "properties": props}
        )  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


@pytest.fixture
def jobs(cloud: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Jobs run as the product runs them locally: child processes of the local job runner."""
    monkeypatch.setenv("HISTOLABEL_JOB_RUNNER", "local")
    monkeypatch.setenv("HISTOLABEL_LOCAL_DIR", str(tmp_path / "local"))
    return tmp_path


@pytest.fixture
def project(cloud: Settings, project_id: str, shared_data: Path, jobs: Path) -> str:
    """A project with the MoNuSeg image ingested as slide `nuclei` (no segmentation yet)."""
    from histolabel.cli.slides import add_arguments, add_slide
    from histolabel.commands import CreateProject

    service_from_env().execute(CreateProject(project_id=project_id, name="imports"), OWNER)
    p = argparse.ArgumentParser()
    add_arguments(p)
    path = shared_data / "labeled" / "monuseg" / f"{IMAGE}.tif"
    args = p.parse_args([str(path), "--project", project_id, "--slide", SLIDE, "--user", OWNER.user,
                         "--site", OWNER.site, "--progress", "off"])  # fmt: skip
    assert add_slide(args) == 0
    return project_id


def cli(*argv: str) -> int:
    from histolabel.cli import main

    return main(list(argv))


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path
