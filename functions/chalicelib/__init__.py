"""Helpers of the Chalice app: request context (auth, roles, parsing, errors) and S3 reads."""
