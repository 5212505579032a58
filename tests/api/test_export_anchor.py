"""Every export anchors the audit trail it was made from (issue 17: "on every export")."""

from __future__ import annotations

from histolabel.adapters.anchor_store import S3AnchorStore
from histolabel.events.envelope import member_label_stream, project_stream
from tests.api.test_flows import P, label


def _audit_resources(settings):
    """The in-memory API's stage gets the anchors bucket and keys, made as the stack makes them."""
    from histolabel.adapters.aws import client
    from histolabel.adapters.provision import create_bucket, create_key, key_parameters
    from histolabel.resources import audit_resources

    resources = audit_resources(settings)
    for alias, params in key_parameters(resources).items():
        create_key(client("kms", settings), alias, params)
    create_bucket(client("s3", settings), resources["AnchorsBucket"]["Properties"], settings.region)


def test_an_export_writes_a_signed_anchor_of_the_heads_it_was_made_from(api):
    _audit_resources(api.svc.settings)
    label(api, "ana", "tumor", [1, 2])
    r = api.request("GET", f"{P}/export?format=csv", user="rex")
    assert r.status_code == 200
    anchor = S3AnchorStore(api.svc.settings).latest("proj")
    assert anchor is not None and anchor.reason == "export"
    for stream in (project_stream("proj"), member_label_stream("proj", "s1", "ana")):
        assert anchor.heads[stream] == api.svc.events.head(stream)
