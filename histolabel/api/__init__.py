"""The HTTP API's pure side: request/response schemas, the route table and OpenAPI document,
queue assembly, review filtering, agreement, audit and export."""
