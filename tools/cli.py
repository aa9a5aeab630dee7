"""The ``chatledger`` command: a thin click layer over the store, the projections and the runtime.

Every command parses its arguments, makes one library call and formats the answer. Errors end
here as one line on stderr: exit status 2 for trouble (bad usage, bad input, an unusable
database or file), 1 for a check that ran and failed (``verify``, ``replay``,
``export --strict``), 0 otherwise.
"""

from __future__ import annotations

import errno
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from chatledger.eventstore import ChatledgerError
from chatledger.tools import _audit, _read, _run, _write, serve
from chatledger.tools._context import Ledger
from chatledger.tools._logging import configure_logging, reset_logging

__all__ = ["cli", "hoist_global_options", "main"]

ERROR = 2


class Failure(click.ClickException):
    """An error already phrased for the user: printed as one line, exit status 2."""

    exit_code = ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


# The group's own options, accepted after the subcommand too (``chatledger sessions --db x``),
# as sqlite-utils and gh accept theirs: the value-taking ones, then the flags. The output
# formats move too, so a format a command cannot print is refused the same way wherever it
# was given (see ``_refuse_formats``).
_GLOBAL_WITH_VALUE = ("--db",)
_GLOBAL_FLAGS = re.compile(
    r"-v+\Z|--verbose\Z|--log-json\Z|--debug\Z|--json\Z|--nl\Z|--csv\Z|--version\Z")


def hoist_global_options(args: Sequence[str],
                         value_options: frozenset[str] = frozenset()) -> list[str]:
    """``args`` with the group's options moved in front of the subcommand.

    Nothing past ``--`` moves, nor one of the subcommand's own options that takes a value
    (``value_options``) or that value, so ``--out -v`` keeps ``-v`` as the file name and
    ``erase KEY --version 2`` keeps erase's ``--version``.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in value_options:
            rest.extend(args[i:i + 2])
            i += 2
            continue
        if arg in _GLOBAL_WITH_VALUE and i + 1 < len(args):
            front.extend(args[i:i + 2])
            i += 2
            continue
        if arg.startswith(tuple(f"{o}=" for o in _GLOBAL_WITH_VALUE)) or _GLOBAL_FLAGS.match(arg):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def _value_options(command: click.Command) -> frozenset[str]:
    """Every option string of ``command`` (and of its subcommands) that takes a value."""
    names: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option) and not param.is_flag and not param.count:
            names.update(param.opts)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            names |= _value_options(sub)
    return frozenset(names)


def _command_name(args: Sequence[str]) -> str | None:
    """The subcommand named in ``args`` (the first word that is no global option or value)."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return args[i + 1] if i + 1 < len(args) else None
        if arg in _GLOBAL_WITH_VALUE:
            i += 2
            continue
        if not arg.startswith("-"):
            return arg
        i += 1
    return None


# The output formats, by the parameter a command declares for each (``json_flag`` declares
# ``as_json``, ``table_flags`` also ``nl`` and ``csv``).
_FORMAT_PARAMETERS = {"json": "as_json", "nl": "nl", "csv": "csv"}


def _formats(command: click.Command) -> set[str]:
    """The output formats ``command`` (or a subcommand of it) can print."""
    names = {p.name for p in command.params}
    found = {fmt for fmt, name in _FORMAT_PARAMETERS.items() if name in names}
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            found |= _formats(sub)
    return found


def _refuse_formats(group: click.Group, ctx: click.Context, name: str,
                    command: click.Command) -> None:
    """Fail on an output format ``command`` cannot print, rather than ignore it.

    Raises:
        Failure: ``--json``, ``--nl`` or ``--csv`` was given for a command without that output.
    """
    fmt = ctx.params.get("fmt")
    asked = (["json"] if ctx.params.get("as_json") else []) + ([fmt] if fmt else [])
    offered = _formats(command)
    missing = next((f for f in asked if f not in offered), None)
    if missing == "json":
        raise Failure(f"--json: `{name}` has no JSON output")
    if missing is not None:
        tables = ", ".join(sorted(n for n, c in group.commands.items() if "nl" in _formats(c)))
        use = "; use --json" if "json" in offered else ""
        raise Failure(f"--{missing}: `{name}` prints no table, so it has no --{missing} "
                      f"output{use} (--nl and --csv are for {tables})")


class LedgerGroup(click.Group):
    """A group whose errors are one line on stderr and never a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Only the named command's own value options stay put; an unknown name hoists with
        # every command's, and then fails as an unknown command.
        named = self.commands.get(_command_name(args) or "")
        commands = [named] if named is not None else list(self.commands.values())
        taking = frozenset().union(*(_value_options(c) for c in commands))
        return super().parse_args(ctx, hoist_global_options(args, taking - {"--db"}))

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and command is not None:
            _refuse_formats(self, ctx, name, command)
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            raise
        except ChatledgerError as e:
            raise Failure(str(e)) from e
        except OSError as e:
            if e.errno == errno.EPIPE:
                raise
            raise Failure(_os_message(e)) from e
        except Exception as e:
            if ctx.params.get("debug"):
                traceback.print_exc(file=sys.stderr)
            raise Failure(f"unexpected {type(e).__name__}: {e} (run with --debug for the "
                          "traceback)") from e

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            click.echo(f"Error: {e.format_message()}{hint}", err=True)
            code: int = e.exit_code
        except click.ClickException as e:
            e.show()
            code = e.exit_code
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            code = 130
        else:
            code = result if isinstance(result, int) else 0
        finally:
            reset_logging()
        if standalone_mode:
            sys.exit(code)
        return code


def _os_message(e: OSError) -> str:
    text = e.strerror or str(e)
    return f"{text}: {e.filename!r}" if e.filename else text


@click.group("chatledger", cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "url", metavar="URL", default=None,
              help="Database: sqlite:///path.db or postgresql://… "
                   "[default: $CHATLEDGER_URL, else ./chatledger.db]")
@click.option("--json", "as_json", is_flag=True, help="JSON output from every read command.")
@click.option("--nl", "fmt", flag_value="nl",
              help="JSON lines from the table commands (sessions, history, log, verify, stats).")
@click.option("--csv", "fmt", flag_value="csv",
              help="CSV from the table commands (sessions, history, log, verify, stats).")
@click.option("-v", "--verbose", count=True, help="Log more: -v info, -vv debug (default: warnings).")
@click.option("--log-json", is_flag=True, help="Log lines as JSON on stderr.")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
@click.version_option(package_name="chatledger", prog_name="chatledger")
@click.pass_context
def cli(ctx: click.Context, url: str | None, as_json: bool, fmt: str | None, verbose: int,
        log_json: bool, debug: bool) -> None:
    """chatledger: an event-sourced, auditable log of chat conversations.

    Keys are name=value pairs (user_id=123 conversation_id=1); a bare value means
    session_id=value. Exit status: 0 ok, 1 a check failed (verify, replay, export --strict),
    2 an error.
    """
    configure_logging(verbosity=verbose, as_json=log_json)
    ledger = Ledger(url, as_json=as_json, debug=debug, fmt=fmt)
    ctx.obj = ledger
    ctx.call_on_close(ledger.close)


for _module in (_read, _write, _run, _audit, serve):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """Entry point of the ``chatledger`` console script."""
    cli.main(prog_name="chatledger")
