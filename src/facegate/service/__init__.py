"""The HTTP service: a FastAPI app factory, routes per resource, API keys with scopes,
problem+json errors and an audit trail. Start it with ``facegate serve``."""
