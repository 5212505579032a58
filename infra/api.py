"""The API's OpenAPI body, generated from the Chalice app's routes by Chalice's own
CloudFormation swagger generator (what `chalice package` does, without its project config,
so a deploy depends only on `functions/app.py` importing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from chalice import Chalice
from chalice.deploy.swagger import CFNSwaggerGenerator

from infra.errors import InfraError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_APP = ROOT / "functions" / "app.py"


class AppLoadError(InfraError):
    """The Chalice app could not be imported, so the API cannot be described."""


def load_app(path: Path = DEFAULT_APP) -> Chalice:
    if not path.is_file():
        raise AppLoadError(f"no Chalice app at {path}")
    # chalicelib/ sits beside app.py, as Chalice packages it.
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"_histolabel_app_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise AppLoadError(f"importing {path} failed: {type(err).__name__}: {err}") from err
    app = getattr(module, "app", None)
    if not isinstance(app, Chalice):
        raise AppLoadError(f"{path} defines no Chalice object named 'app'")
    return app


def swagger_for(app: Chalice) -> dict[str, Any]:
    return dict(CFNSwaggerGenerator().generate_swagger(app))
