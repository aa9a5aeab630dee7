"""``chatledger serve``: a read-only web view of a ledger (sessions, conversations, runs, log).

``create_app(store)`` builds the Starlette app; it needs the ``serve`` extra (Starlette,
Jinja2, uvicorn), which is imported only when the app is built, so the rest of the command
line works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatledger.tools.serve._command import COMMANDS, open_readonly, serve

if TYPE_CHECKING:
    from chatledger.tools.serve._app import create_app

__all__ = ["COMMANDS", "create_app", "open_readonly", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from chatledger.tools.serve._app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
