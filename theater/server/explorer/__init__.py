"""The web explorer served by ``theater server`` at ``/``: the actors as a tree, an actor's timeline, an event with
its state diff and "replay to here", the message flow between actors, verify with progress, and the audit log's
checkpoints (``docs/explorer.md``).

Modules: ``views`` (the pages, static files and JSON routes), ``session`` (login: the token becomes a session
cookie), ``record`` (what the views read from the store). ``static/`` holds the pages, plain JavaScript and CSS
with no build step. May import the porcelain and the server's shared modules; the server's app imports
``install``.
"""

from aiohttp import web

from theater.server.explorer.session import SESSIONS, Sessions, admits
from theater.server.explorer.views import API_HEADERS, routes


def install(app: web.Application) -> None:
    """Add the explorer's routes and its session table to the server's application, and the headers that keep a
    browser from running anything the API answers (``API_HEADERS``) to every answer that is not one of its
    pages."""
    app[SESSIONS] = Sessions()
    app.add_routes(routes)
    app.on_response_prepare.append(_api_headers)


async def _api_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in API_HEADERS.items():
        response.headers.setdefault(name, value)


__all__ = ["admits", "install", "routes"]
