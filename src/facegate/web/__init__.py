"""The operators' web UI: server-rendered pages over the REST API (see docs/web.md)."""
