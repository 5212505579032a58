"""The HistoLabel HTTP API: thin Chalice routes over histolabel/. The routes are registered from
the route table (histolabel/api/routes.py: method, path, roles, schemas) with their handlers in
chalicelib/routes/; checks, parsing and errors are in chalicelib/context.py."""

from __future__ import annotations

import os

from chalice import Chalice, CORSConfig
from chalicelib.context import error
from chalicelib.routes import register

from histolabel.adapters import aws

if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:  # the API's Lambda: give up on a store within seconds
    os.environ.setdefault(aws.PROFILE_ENV, "api")

app = Chalice(app_name="histolabel")
app.api.binary_types.append("application/vnd.apache.parquet")
# The web app is served from another origin; it sends the idempotency key as a header.
app.api.cors = CORSConfig(allow_origin="*", allow_headers=["Idempotency-Key"], max_age=600)
register(app)

# The stream and job-event functions live in functions/handlers/ (light modules, own zips).

__all__ = ["app", "error"]
