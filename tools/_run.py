"""Commands that run chains: ``demo``, ``chat``, ``replay``."""

from __future__ import annotations

import sys

import click

from chatledger.eventstore import ChatledgerError
from chatledger.tools._context import CHECK_FAILED, Ledger, json_flag, pass_ledger, require_session
from chatledger.tools._keys import parse_key
from chatledger.tools._output import echo_json, plural
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
@click.option("--base-url", metavar="URL", envvar="OPENAI_BASE_URL",
              help="An OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenAI) ending in "
                   "/v1; the key comes from $OPENAI_API_KEY [default: $OPENAI_BASE_URL, else "
                   "the offline model].")
@click.option("--model", "model_name", metavar="NAME", help="The model to ask (with --base-url).")
@pass_ledger
@click.pass_context
def chat(ctx: click.Context, ledger: Ledger, key: tuple[str, ...], base_url: str | None,
         model_name: str | None) -> None:
    """Talk in a session that persists (default key: session_id=chat).

    Reads one message per line from stdin, a terminal (with line editing and history) or a
    pipe (any bytes: invalid UTF-8 is replaced, never fatal). Slash commands: /history,
    /as-of N, /quit.

    \b
    Example: chatledger chat user_id=123 conversation_id=1
    """
    from chatledger.tools.chat import HELP, input_lines, make_model, run_chat

    session_key = parse_key(key or ("chat",))
    model = make_model(base_url=base_url, model=model_name)
    store = ledger.store(create=True)
    interactive = sys.stdin.isatty()
    if interactive:
        click.echo(f"chatting in {session_key.stream_id} with {model!r}; {HELP}")
    failures = run_chat(store, session_key, model, input_lines(sys.stdin, prompt="you> "),
                        click.echo)
    if interactive:
        click.echo("")
    if failures:
        ctx.exit(2)


@click.command()
@click.argument("key", nargs=-1, required=True, metavar="KEY...")
@click.option("--chain", "chain_spec", metavar="MODULE:ATTR",
              help="The app's chain: its RunnableWithMessageHistory or the runnable it wraps "
                   "(or a callable returning one).")
@click.option("--model", "model_name", metavar="NAME",
              help="Instead of --chain: re-send each recorded model request to this model "
                   "(with --base-url).")
@click.option("--base-url", metavar="URL", help="The OpenAI-compatible server for --model.")
@click.option("--turn", type=click.IntRange(min=1), metavar="N",
              help="Replay only turn N (1 = the session's first recorded run).")
@click.option("--run", "run_id", metavar="RUN_ID", help="Replay only this run.")
@json_flag
@pass_ledger
@click.pass_context
def replay(ctx: click.Context, ledger: Ledger, key: tuple[str, ...], chain_spec: str | None,
           model_name: str | None, base_url: str | None, turn: int | None, run_id: str | None,
           as_json: bool) -> None:
    """Replay recorded turns through the app's chain, or re-send their model requests; diff.

    With --chain, each turn's recorded chain input (dict inputs included) is rebuilt on the
    history as of the version the turn read and run through the chain; its output and the
    requests its models received are diffed against the recorded ones. With --model and
    --base-url, each recorded model request is re-sent exactly, with its recorded parameters,
    and the replies are diffed. Turns recorded before chain inputs were are marked "partly
    recorded" and get the history followed by the input messages. Exit status 0 when every
    turn replayed the same, 1 when any differs, 2 when a model server cannot be reached or
    fails (no difference is reported then).

    \b
    Example: chatledger replay 2 --chain app:chain --turn 2
    Example: chatledger replay 2 --model llama3.2 --base-url http://localhost:11434/v1
    """
    from chatledger.tools.chat import make_model

    session_key = parse_key(key)
    if chain_spec is not None and (model_name is not None or base_url is not None):
        raise ChatledgerError("give either --chain or --model/--base-url, not both")
    if chain_spec is None and model_name is None and base_url is None:
        raise ChatledgerError("replay needs --chain MODULE:ATTR or --model NAME --base-url URL")
    chain = load_chain(chain_spec) if chain_spec is not None else None
    model = (make_model(base_url=base_url, model=model_name) if chain_spec is None else None)
    store = ledger.store()
    require_session(store, session_key)
    runs = replay_runs(store, session_key, chain, model=model, turn=turn, run_id=run_id)
    same = all(r.equal for r in runs)
    if ledger.wants_json(as_json):
        echo_json({"stream_id": session_key.stream_id, "equal": same,
                   "runs": [run_dict(r) for r in runs]})
    else:
        for r in runs:
            verdict = "same" if r.equal else "DIFFERENT"
            partly = ", partly recorded" if r.partly_recorded else ""
            click.echo(f"turn {r.turn}: run {r.run_id} (version {r.version}, read history "
                       f"v{r.history_version}, {r.status}{partly}): {verdict}")
            for text in (r.diff, r.request_diff, *r.notes):
                if text:
                    click.echo(text)
        differ = sum(not r.equal for r in runs)
        click.echo(f"{len(runs) - differ} of {plural(len(runs), 'run')} replayed the same")
    if not same:
        ctx.exit(CHECK_FAILED)
    sys.stdout.flush()


COMMANDS = [demo, chat, replay]
