"""The rule of which S3 URIs a project may read: its own prefix, or an allow-listed source."""

from __future__ import annotations

import pytest

from histolabel.config import Settings
from histolabel.confinement import OutsideProject, allowed_prefixes, in_project, require_source

S = Settings(stage="unit")
DATA = f"s3://{S.data_bucket}"


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        (f"{DATA}/projects/a/slides/s/source/x.svs", True),
        (f"{DATA}/projects/ab/slides/s/source/x.svs", False),  # 'a' owns nothing of 'ab'
        (f"{DATA}/projects/b/slides/s/source/x.svs", False),
        (f"{DATA}/projects/a/../b/slides/s/source/x.svs", False),
        (f"{DATA}/projects/a/./x", False),
        (f"{DATA}/projects/a//x", False),
        (f"{DATA}/projects/a", False),
        (f"{DATA}/demo/x.svs", False),
        ("s3://other-bucket/projects/a/x.svs", False),
        (f"{DATA.upper()}/projects/a/x.svs", False),
        ("https://example.org/projects/a/x.svs", False),
    ],
)
def test_a_project_owns_its_prefix_of_the_data_bucket_only(uri, ok):
    assert in_project(uri, "a", S) is ok
    if ok:
        assert require_source(uri, "a", S) == uri
    else:
        with pytest.raises(OutsideProject) as err:
            require_source(uri, "a", S)
        assert err.value.field == "source_uri"


def test_allow_listed_prefixes_name_their_projects():
    s = S.model_copy(
        update={
            "source_prefixes": ("s3://scans/lab/{project}/", "a=s3://scans/a-only", "*=s3://library/public/")
        }
    )
    assert require_source("s3://scans/lab/a/x.svs", "a", s)
    assert require_source("s3://scans/a-only/x.svs", "a", s)
    assert require_source("s3://library/public/x.svs", "b", s)
    for uri, project in [
        ("s3://scans/lab/a/x.svs", "b"),
        ("s3://scans/a-only/x.svs", "b"),
        ("s3://scans/a-onlyx/x.svs", "a"),
        ("s3://scans/lab/a/../b/x.svs", "a"),
        ("s3://library/x.svs", "a"),
    ]:
        with pytest.raises(OutsideProject):
            require_source(uri, project, s)


@pytest.mark.parametrize("entry", ["s3://scans/lab/", f"*={DATA}/projects/", "a=not-a-uri", "a=s3://b/../x/"])
def test_an_allow_list_entry_that_would_open_more_than_it_says_is_refused(entry):
    with pytest.raises(ValueError):
        allowed_prefixes(S.model_copy(update={"source_prefixes": (entry,)}))
