from histolabel.adapters.aws import client
from histolabel.adapters.s3 import filesystem


def test_provisioned_resources_have_intended_settings(cloud):
    ddb = client("dynamodb", cloud)
    table = ddb.describe_table(TableName=cloud.events_table)["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["stream", "seq"]
    s3 = client("s3", cloud)
    assert s3.get_bucket_versioning(Bucket=cloud.data_bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=cloud.data_bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=cloud.data_bucket)["Rules"]}
    exports = rules["ExpireExports"]
    assert exports["Filter"] == {"Tag": {"Key": "histolabel-kind", "Value": "export"}}
    assert exports["Expiration"]["Days"] == 2 and exports["Status"] == "Enabled"
    assert rules["AbortIncompleteUploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}


def test_s3fs_round_trip_through_local_cloud(cloud):
    fs = filesystem(cloud)
    path = f"{cloud.data_bucket}/smoke/hello.bin"
    with fs.open(path, "wb") as fh:
        fh.write(b"x" * 1000)
    assert fs.cat_file(path, start=10, end=20) == b"x" * 10


def test_localstack_init_plan_is_generated_from_the_stack_definitions():
    """localstack/init/resources.json must be what histolabel/resources.py says (no drift)."""
    import json
    from pathlib import Path

    from histolabel.adapters.provision import api_plan
    from histolabel.config import Settings

    committed = json.loads((Path(__file__).parents[2] / "localstack/init/resources.json").read_text())
    assert committed == json.loads(json.dumps(api_plan(Settings(stage="local"))))
    assert {t["TableName"] for t in committed["tables"]} == {
        "histolabel-local-events",
        "histolabel-local-projections",
    }
