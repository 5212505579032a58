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


def test_range_reads_answer_the_bytes_asked_for(cloud):
    """The local cloud reads only the range asked for (moto_patches); S3's answers stay its own:
    a range, an open-ended range, a suffix, a range past the end cut to the object, one that
    starts past the end refused (416), and a whole GET after ranged ones."""
    import botocore.exceptions
    import pytest

    s3 = client("s3", cloud)
    body = bytes(range(256)) * 40_000  # 10 MB: past moto's in-memory buffer, so on disk
    key = "smoke/ranges.bin"
    s3.put_object(Bucket=cloud.data_bucket, Key=key, Body=body)

    def ranged(spec: str) -> tuple[bytes, str]:
        got = s3.get_object(Bucket=cloud.data_bucket, Key=key, Range=spec)
        return got["Body"].read(), got["ContentRange"]

    n = len(body)
    assert ranged("bytes=1000-1999") == (body[1000:2000], f"bytes 1000-1999/{n}")
    assert ranged(f"bytes={n - 5}-") == (body[-5:], f"bytes {n - 5}-{n - 1}/{n}")
    assert ranged("bytes=-300") == (body[-300:], f"bytes {n - 300}-{n - 1}/{n}")
    assert ranged(f"bytes={n - 10}-{n + 100}") == (body[-10:], f"bytes {n - 10}-{n - 1}/{n}")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        s3.get_object(Bucket=cloud.data_bucket, Key=key, Range=f"bytes={n}-{n + 10}")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    assert s3.get_object(Bucket=cloud.data_bucket, Key=key)["Body"].read() == body
