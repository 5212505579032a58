"""Anchoring on export, as the API does it: deployed, by invoking the anchoring function (the
API holds no signing grant); in the local cloud, where no function runs our code, in-process."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from histolabel.service import HistoLabel

log = logging.getLogger(__name__)


def anchor_on_export(svc: HistoLabel, project_id: str) -> None:
    """Anchor the heads an export is made from. Deployed, the API holds no signing grant and
    invokes the anchoring function (HISTOLABEL_ANCHOR_FUNCTION); locally it runs in-process. A
    failure is logged, not raised: the timer anchors within the minute anyway."""
    import json

    from histolabel.adapters.aws import client

    try:
        function = svc.settings.anchor_function
        if function:
            body = json.dumps({"project_id": project_id, "reason": "export"}).encode()
            client("lambda", svc.settings).invoke(FunctionName=function, Payload=body)
        else:
            from histolabel.runtime.anchorer_lambda import Anchorer

            Anchorer(svc).anchor_project(project_id, reason="export")
    except Exception:
        log.exception("anchoring %s on export failed", project_id)
