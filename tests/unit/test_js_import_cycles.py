"""No import cycle among the web app's modules, dynamic `import()` included. A cycle between ES
modules works until a module's top level reads a binding of one not yet evaluated (a TDZ error
at start-up, in whichever module the browser happened to load first): app.js is the composition
point that imports the modes, and nothing imports it back."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.test_import_cycles import cycles

WEB = Path(__file__).resolve().parents[2] / "web"
JS = WEB / "js"
# import x from "./a.js"; import { a } from "./a.js"; import "./a.js"; export { a } from "./a.js";
# import("./a.js"). Line comments are dropped first, so a comment that says "import" is no edge.
STATIC = re.compile(r"""^\s*(?:import|export)\b[^;'"]*?(?:\bfrom\s*)?["']([^"']+)["']""", re.M)
DYNAMIC = re.compile(r"""\bimport\s*\(\s*["']([^"']+)["']\s*\)""")
LINE_COMMENT = re.compile(r"(^|[^:\"'])//.*$", re.M)


def _name(path: Path) -> str:
    return path.relative_to(WEB).as_posix()


def imports_of(source: str) -> list[str]:
    text = LINE_COMMENT.sub(r"\1", source)
    return [*STATIC.findall(text), *DYNAMIC.findall(text)]


def graph() -> dict[str, set[str]]:
    modules = {_name(p): p for p in JS.rglob("*.js")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for spec in imports_of(path.read_text()):
            if not spec.startswith("."):
                continue
            target = _name((path.parent / spec).resolve())
            if target in modules and target != name:
                edges[name].add(target)
    return edges


def test_the_parser_sees_static_dynamic_and_reexports():
    source = """
    import { a, b } from "./a.js";
    import * as z from '../vendor/z.js';
    import "./side.js";
    export { c } from "./c.js";
    // import { gone } from "./commented.js";
    const { d } = await import("./d.js");
    """
    assert sorted(imports_of(source)) == ["../vendor/z.js", "./a.js", "./c.js", "./d.js", "./side.js"]


def test_the_graph_holds_the_app_entry_point():
    g = graph()
    assert "js/app.js" in g and "js/labeling.js" in g["js/app.js"]


def test_no_js_import_cycle():
    found = cycles(graph())
    assert not found, f"web/js import cycles: {found}"


def test_nothing_imports_the_composition_point():
    importers = sorted(m for m, targets in graph().items() if "js/app.js" in targets)
    assert not importers, f"app.js is the composition point; these import it: {importers}"
