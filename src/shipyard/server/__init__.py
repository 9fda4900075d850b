"""The server: `shipyard serve`, a REST API over the application layer, rollouts as server jobs,
live events, config versions, metrics and signed webhooks.

`create_app(settings)` builds the FastAPI application; nothing is read or opened at import time.
Routes call `shipyard.app` and nothing below it; the one route table (policy.py) names the
permission each route needs.
"""
