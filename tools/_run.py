"""Commands that run chains: ``demo``, ``chat``, ``replay``."""

from __future__ import annotations

import sys

import click

from chatledger.tools._context import CHECK_FAILED, Ledger, json_flag, pass_ledger, require_session
from chatledger.tools._keys import parse_key
from chatledger.tools._output import echo_json
from chatledger.tools.replay import load_chain, run_dict
from chatledger.tools.replay import replay as replay_runs

__all__ = ["COMMANDS"]


@click.command()
@pass_ledger
@click.pass_context
def demo(ctx: click.Context, ledger: Ledger) -> None:
    """Run the message-history how-to offline, then audit the log.

    Uses --db (default ./chatledger.db, created if missing). Each run uses fresh session ids,
    so it can run any number of times.

    \b
    Example: chatledger demo
    """
    from chatledger.tools.demo import run_demo

    if not run_demo(ledger.store(create=True), click.echo):
        ctx.exit(CHECK_FAILED)


@click.command()
@click.argument("key", nargs=-1, metavar="[KEY]...")
@click.option("--base-url", metavar="URL",
              help="An OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenAI) ending in "
                   "/v1 [default: the offline model].")
@click.option("--model", "model_name", metavar="NAME", help="The model to ask (with --base-url).")
@pass_ledger
@click.pass_context
def chat(ctx: click.Context, ledger: Ledger, key: tuple[str, ...], base_url: str | None,
         model_name: str | None) -> None:
    """Talk in a session that persists (default key: session_id=chat).

    Reads one message per line from stdin, a terminal or a pipe. Slash commands: /history,
    /as-of N, /quit.

    \b
    Example: chatledger chat user_id=123 conversation_id=1
    """
    from chatledger.tools.chat import HELP, make_model, run_chat

    session_key = parse_key(key or ("chat",))
    model = make_model(base_url=base_url, model=model_name)
    store = ledger.store(create=True)
    stdin = sys.stdin
    interactive = stdin.isatty()
    if interactive:
        click.echo(f"chatting in {session_key.stream_id} with {model!r}; {HELP}")

    def prompt() -> None:
        click.echo("you> ", nl=False)

    failures = run_chat(store, session_key, model, stdin, click.echo,
                        prompt=prompt if interactive else None)
    if interactive:
        click.echo("")
    if failures:
        ctx.exit(2)


@click.command()
@click.argument("key", nargs=-1, required=True, metavar="KEY...")
@click.option("--chain", "chain_spec", required=True, metavar="MODULE:ATTR",
              help="The chain to replay with: a runnable taking a list of messages, or a "
                   "callable returning one.")
@click.option("--run", "run_id", metavar="RUN_ID", help="Replay only this run.")
@json_flag
@pass_ledger
@click.pass_context
def replay(ctx: click.Context, ledger: Ledger, key: tuple[str, ...], chain_spec: str,
           run_id: str | None, as_json: bool) -> None:
    """Re-run recorded turns on the history they saw; diff outputs.

    The chain gets the history as of the turn's recorded version followed by the turn's input
    messages. Outputs are compared by role, text and tool calls. Exit status 0 when every
    replay says what was recorded, 1 when any differs.

    \b
    Example: chatledger replay 1 --chain runtime.models:OfflineChatModel
    """
    session_key = parse_key(key)
    chain = load_chain(chain_spec)
    store = ledger.store()
    require_session(store, session_key)
    runs = replay_runs(store, session_key, chain, run_id=run_id)
    same = all(r.equal for r in runs)
    if ledger.wants_json(as_json):
        echo_json({"stream_id": session_key.stream_id, "equal": same,
                   "runs": [run_dict(r) for r in runs]})
    else:
        for r in runs:
            verdict = "same" if r.equal else "DIFFERENT"
            click.echo(f"run {r.run_id} (version {r.version}, read history v{r.history_version},"
                       f" {r.status}): {verdict}")
            if r.diff:
                click.echo(r.diff)
        differ = sum(not r.equal for r in runs)
        click.echo(f"{len(runs) - differ} of {len(runs)} runs replayed the same")
    if not same:
        ctx.exit(CHECK_FAILED)
    sys.stdout.flush()


COMMANDS = [demo, chat, replay]
