"""``chatledger serve``: the read-only web view on a local port."""

from __future__ import annotations

import ipaddress

import click

from chatledger.eventstore import EventStore, redact_url
from chatledger.tools._context import Ledger, pass_ledger

__all__ = ["COMMANDS", "loopback_hosts", "open_readonly", "serve"]


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


def loopback_hosts(host: str) -> list[str] | None:
    """The host names a server bound to ``host`` answers to, when ``host`` is a loopback
    address: that address (bracketed when IPv6, as the Host header carries it) and
    ``localhost``; any other name there is a page elsewhere reaching it through DNS rebinding.
    None when ``host`` is not a loopback address (such a server answers to any name).
    """
    if host.lower() == "localhost":
        return ["127.0.0.1", "[::1]", "localhost"]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not address.is_loopback:
        return None
    return [f"[{address.compressed}]" if address.version == 6 else address.compressed,
            "localhost"]


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
    allowed = loopback_hosts(host)
    app = create_app(store, allowed_hosts=allowed)
    if allowed is None:
        click.echo(f"Warning: listening on {host}: anyone who can reach it can read every "
                   "conversation in this ledger.", err=True)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Serving {redact_url(ledger.url)} read-only at http://{shown}:{port}/ "
               "(Ctrl+C to stop)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


COMMANDS = [serve]
