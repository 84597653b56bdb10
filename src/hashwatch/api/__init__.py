"""The HTTP API: a thin shell over the domain services, like the CLI.

`hashwatch.api.app.create_app` builds the FastAPI app; `hashwatch serve` runs it.
"""
