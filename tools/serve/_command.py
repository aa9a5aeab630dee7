"""``chatledger serve``: the read-only web view on a local port."""

from __future__ import annotations

import ipaddress

import click

from chatledger.eventstore import EventStore, redact_url
from chatledger.tools._context import Ledger, pass_ledger

__all__ = ["COMMANDS", "LOOPBACK_HOSTS", "open_readonly", "serve"]

LOOPBACK_HOSTS = ["127.0.0.1", "localhost"]
"""Host names a server bound to a loopback address answers to (others: DNS rebinding)."""


class MissingExtraError(click.ClickException):
    """A dependency of ``serve`` is not installed: one line, exit status 2."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def open_readonly(ledger: Ledger) -> EventStore:
    """The store the web view reads: the one place ``serve`` opens it.

    Raises:
        NotFoundError: The SQLite file does not exist.
        StoreError: The database cannot be opened.
    """
    # The pages only ever call read methods (the app holds the store as a read-only protocol).
    return ledger.store()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--db", "db_url", metavar="URL", default=None,
              help="Database to show [default: the global --db, $CHATLEDGER_URL, "
                   "else ./chatledger.db]")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address lets others on the "
                   "network read every conversation.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True,
              help="Port to listen on.")
@pass_ledger
def serve(ledger: Ledger, db_url: str | None, host: str, port: int) -> None:
    """Browse the ledger in a web browser: sessions, conversations, runs, the log.

    Read-only: the pages never write. Needs the serve extra
    (pip install 'chatledger[serve]').

    \b
    Example: chatledger serve --db sqlite:///memory.db --port 8765
    """
    try:
        import uvicorn

        from chatledger.tools.serve._app import create_app
    except ImportError as e:
        raise MissingExtraError(f"chatledger serve needs its extra: pip install "
                                f"'chatledger[serve]' ({e})") from e
    if db_url is not None:
        ledger.url = db_url
    store = open_readonly(ledger)
    loopback = _is_loopback(host)
    app = create_app(store, allowed_hosts=LOOPBACK_HOSTS if loopback and host != "::1" else None)
    if not loopback:
        click.echo(f"Warning: listening on {host}: anyone who can reach it can read every "
                   "conversation in this ledger.", err=True)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Serving {redact_url(ledger.url)} read-only at http://{shown}:{port}/ "
               "(Ctrl+C to stop)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


COMMANDS = [serve]
