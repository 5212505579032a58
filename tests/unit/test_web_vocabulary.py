"""The web app holds no copy of the vocabulary GET /config states (histolabel/api/vocabulary.py):
no role name as a string in its code (role checks go through `may`), no palette list, no list of
settings choices. A copy is how the app's role checks drifted from the route table before."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from histolabel.commands import PALETTE
from histolabel.events.fields import CertaintyMetric, ModelKind, Role

JS = Path(__file__).resolve().parents[2] / "web" / "js"
STRING = re.compile(r""""([^"\\\n]*)"|'([^'\\\n]*)'""")
LINE_COMMENT = re.compile(r"(^|[^:\"'\\])//.*$", re.M)


def _strings(path: Path) -> set[str]:
    code = LINE_COMMENT.sub(r"\1", path.read_text())
    return {a or b for a, b in STRING.findall(code)}


def test_no_role_name_is_written_into_the_web_app():
    roles = set(get_args(Role))
    found = {p.name: sorted(_strings(p) & roles) for p in JS.glob("*.js")}
    assert not {k: v for k, v in found.items() if v}, f"role names in web/js (use may(...)): {found}"


def test_no_palette_or_settings_choice_list_in_the_web_app():
    for path in JS.glob("*.js"):
        strings = _strings(path)
        colours = {c.lower() for c in strings} & {c.lower() for c in PALETTE}
        # The API-less viewer (?zarr=) colours two demo categories; the palette is ten.
        assert len(colours) <= 2, f"{path.name} holds the palette: {sorted(colours)}"
        for choices in (CertaintyMetric, ModelKind):  # one may be a word elsewhere (a sort key)
            listed = strings & set(get_args(choices))
            assert len(listed) <= 1, f"{path.name} lists settings choices: {sorted(listed)}"
