"""`phase-golem serve`: the web dashboard (DESIGN §13), a thin face over the engine.

Imported only by the `serve` command: starlette, jinja2, uvicorn and prometheus_client are
the `[web]` extra and never load on any other command's path.
"""
