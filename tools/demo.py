"""``chatledger demo``: LangChain's message-history how-to, end to end, offline.

Every conversation of the how-to runs through ``runtime.RunnableWithMessageHistory`` with
``runtime.models.OfflineChatModel``, a model that answers only from the history it is given,
so "what's my name?" shows plainly whether memory worked. Each run uses fresh session ids
(a short run tag is prefixed), so the demo can run again and again on the same database; the
sessions of earlier runs stay in the log.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from chatledger.eventstore import (
    EventStore,
    HumanMessage,
    Message,
    RunRecorded,
    SessionKey,
    redact_url,
)
from chatledger.projections import ChatHistory, recorded_turns
from chatledger.runtime import (
    ChatPromptTemplate,
    ConfigurableFieldSpec,
    MessagesPlaceholder,
    RunnableParallel,
    RunnableWithMessageHistory,
)
from chatledger.runtime.models import OfflineChatModel
from chatledger.tools._output import (
    event_summary,
    format_time,
    message_text,
    plural,
    role_of,
    table,
)

__all__ = ["run_demo"]

Echo = Callable[[str], None]


class _Demo:
    def __init__(self, store: EventStore, echo: Echo, tag: str) -> None:
        self.store = store
        self.echo = echo
        self.tag = tag
        self.model = OfflineChatModel()

    def history(self, session_id: str) -> ChatHistory:
        return ChatHistory(session_id, self.store)

    def sid(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def heading(self, title: str, *why: str) -> None:
        self.echo("")
        self.echo(f"== {title} ==")
        for line in why:
            self.echo(line)

    def say(self, where: str, sent: str, reply: Any) -> None:
        self.echo(f"  [{where}] user: {sent}")
        self.echo(f"  [{where}] assistant: {_reply_text(reply)}")

    # -- the how-to, section by section ----------------------------------------------------
    def messages_in_out(self) -> None:
        self.heading("1. Messages in, message out",
                     "The model itself is wrapped: RunnableWithMessageHistory(model, "
                     "get_session_history).",
                     "Within a session the history is loaded before each call, so the model "
                     "knows who it talks to;",
                     "a new session starts empty.")
        chain = RunnableWithMessageHistory(self.model, self.history)
        for name, text in (("1", "hi - im bob!"), ("1", "whats my name?"),
                           ("1a", "whats my name?")):
            sid = self.sid(name)
            reply = chain.invoke([HumanMessage(content=text)],
                                 config={"configurable": {"session_id": sid}})
            self.say(f"session_id={sid}", text, reply)

    def dict_in(self) -> None:
        self.heading("2. Dictionary in, message out (a prompt with a history placeholder)",
                     "prompt | model, with input_messages_key='input' and "
                     "history_messages_key='history':",
                     "only the 'input' message is saved; the history fills the placeholder.")
        prompt = ChatPromptTemplate.from_messages([
            ("system", "You're an assistant who speaks in {language}. "
                       "Respond in 20 words or fewer"),
            MessagesPlaceholder(variable_name="history"),
            ("human", "{input}"),
        ])
        chain = RunnableWithMessageHistory(prompt | self.model, self.history,
                                           input_messages_key="input",
                                           history_messages_key="history")
        for name, text in (("2", "hi im bob!"), ("2", "whats my name?"),
                           ("2a", "whats my name?")):
            sid = self.sid(name)
            reply = chain.invoke({"language": "italian", "input": text},
                                 config={"configurable": {"session_id": sid}})
            self.say(f"session_id={sid}", text, reply)

    def dict_out(self) -> None:
        self.heading("3. Messages in, dictionary out",
                     "RunnableParallel({'output_message': model}) with "
                     "output_messages_key='output_message':",
                     "the reply is saved from that key of the output dict.")
        chain = RunnableWithMessageHistory(RunnableParallel({"output_message": self.model}),
                                           self.history, output_messages_key="output_message")
        for name, text in (("3", "hi - im bob!"), ("3", "whats my name?"),
                           ("3a", "whats my name?")):
            sid = self.sid(name)
            reply = chain.invoke([HumanMessage(content=text)],
                                 config={"configurable": {"session_id": sid}})
            self.say(f"session_id={sid}", text, reply["output_message"])

    def single_key(self) -> None:
        self.heading("4. A dictionary with one key for all messages",
                     "itemgetter('input_messages') | model, with "
                     "input_messages_key='input_messages'.")
        chain = RunnableWithMessageHistory(itemgetter("input_messages") | self.model,
                                           self.history, input_messages_key="input_messages")
        for name, text in (("4", "hi - im bob!"), ("4", "whats my name?"),
                           ("4a", "whats my name?")):
            sid = self.sid(name)
            reply = chain.invoke({"input_messages": [HumanMessage(content=text)]},
                                 config={"configurable": {"session_id": sid}})
            self.say(f"session_id={sid}", text, reply)

    def composite_keys(self) -> None:
        self.heading("5. Composite keys: user_id + conversation_id",
                     "history_factory_config names two ConfigurableFieldSpec fields; the "
                     "factory receives both",
                     "and builds SessionKey(user_id=..., conversation_id=...), which cannot "
                     "collide the way",
                     "f'{user_id}--{conversation_id}' strings can.")
        prompt = ChatPromptTemplate.from_messages([
            ("system", "You're an assistant who speaks in {language}. "
                       "Respond in 20 words or fewer"),
            MessagesPlaceholder(variable_name="history"),
            ("human", "{input}"),
        ])

        def get_session_history(user_id: str, conversation_id: str) -> ChatHistory:
            return ChatHistory(SessionKey(user_id=user_id, conversation_id=conversation_id),
                               self.store)

        fields = [
            ConfigurableFieldSpec(id="user_id", annotation=str, name="User ID",
                                  description="Unique identifier for the user.", default="",
                                  is_shared=True),
            ConfigurableFieldSpec(id="conversation_id", annotation=str,
                                  name="Conversation ID",
                                  description="Unique identifier for the conversation.",
                                  default="", is_shared=True),
        ]
        chain = RunnableWithMessageHistory(prompt | self.model, get_session_history,
                                           input_messages_key="input",
                                           history_messages_key="history",
                                           history_factory_config=fields)
        conversation = self.sid("1")
        for user, text in (("123", "hi im bob!"), ("123", "whats my name?"),
                           ("456", "whats my name?")):
            reply = chain.invoke({"language": "italian", "input": text},
                                 config={"configurable": {"user_id": user,
                                                          "conversation_id": conversation}})
            self.say(f"user_id={user} conversation_id={conversation}", text, reply)

    def audit(self) -> bool:
        key = SessionKey(session_id=self.sid("1"))
        self.heading(f"6. The log of session_id={key.session_id}",
                     "Every message is an immutable event; each turn also records a "
                     f"{RunRecorded.__struct_config__.tag} event",
                     "with the history version the model read. (chatledger log "
                     f"{key.session_id})")
        records = self.store.read(key)
        self.echo(_indent(table(["VERSION", "TYPE", "RECORDED", "DIGEST", "SUMMARY"],
                                ([r.version, r.type, format_time(r.recorded_at), r.digest[:12],
                                  event_summary(r, 50)] for r in records))))
        # The version the second turn's model read, from the decoded run itself: a stored tag
        # can change (RunRecorded's did), the event's history_version cannot.
        seen = recorded_turns(records)[1].run.history_version
        self.heading(f"7. The history as of version {seen}",
                     "Any earlier state can be read back: this is what the model saw before "
                     "the second turn.",
                     f"(chatledger history {key.session_id} --as-of {seen})")
        _, messages = self.store.load_history_at(key, version=seen)
        self.echo(_indent(_messages_table(messages)))
        self.heading("8. Verify the log",
                     "Every event carries a digest chained to the one before; verify "
                     "recomputes them all. (chatledger verify)")
        report = self.store.verify()
        verdict = ("intact" if report.ok else plural(len(report.problems), "problem"))
        self.echo(f"  {verdict}: {plural(report.events, 'event')} in {plural(report.streams, 'session')}")
        return report.ok


def _reply_text(reply: Any) -> str:
    return message_text(reply) if isinstance(reply, Message) else str(reply)


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _messages_table(messages: list[Message]) -> str:
    return table(["#", "ROLE", "CONTENT"],
                 ([i, role_of(m), message_text(m)] for i, m in enumerate(messages, 1)))


def run_demo(store: EventStore, echo: Echo, *, tag: str | None = None) -> bool:
    """Run the how-to's conversations on ``store``, narrating to ``echo``.

    Returns:
        True when ``verify`` found the log intact at the end.
    """
    demo = _Demo(store, echo, tag or secrets.token_hex(2))
    echo("chatledger demo: LangChain's message-history how-to, on an event log, offline.")
    echo(f"Database: {redact_url(store.url)}   run tag: {demo.tag} (fresh session ids for each run)")
    echo("The offline model knows only what the history it is given says: it can tell Bob "
         "his name")
    echo("only in a session where Bob introduced himself.")
    demo.messages_in_out()
    demo.dict_in()
    demo.dict_out()
    demo.single_key()
    demo.composite_keys()
    ok = demo.audit()
    echo("")
    echo("Next: chatledger sessions | chatledger history <key> | chatledger log <key> | "
         "chatledger chat")
    return ok
