"""cfn-lint over the generated templates, before anything is sent to CloudFormation."""

from __future__ import annotations

import json
from typing import Any

from cfnlint.api import ManualArgs
from cfnlint.api import lint as cfn_lint


def lint(templates: dict[str, dict[str, Any]], region: str) -> list[str]:
    """Every cfn-lint error and warning, as 'stack: RULE message (path)'."""
    problems = []
    for name, template in templates.items():
        matches = cfn_lint(json.dumps(template), config=ManualArgs(regions=[region]))
        for m in matches:
            path = "/".join(str(p) for p in m.path) if getattr(m, "path", None) else ""
            problems.append(f"{name}: {m.rule.id} {m.message} ({path})")
    return problems
