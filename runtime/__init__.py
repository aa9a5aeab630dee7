"""Stateless chain runtime: runnables, prompts, chat models and ``RunnableWithMessageHistory``.

Nothing here holds conversation state between calls: histories live in the log, and
``RunnableWithMessageHistory`` reads them before a run and appends the turn after it.
"""

from __future__ import annotations

from chatledger.eventstore import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    Message,
    SystemMessage,
    ToolMessage,
)
from chatledger.runtime import _bridge  # noqa: F401  (registers LangChain runnables)
from chatledger.runtime._compose import RunnableParallel
from chatledger.runtime._config import ConfigurableFieldSpec, RunnableConfig, ensure_config
from chatledger.runtime._history_shapes import output_messages, runnable_input
from chatledger.runtime._lambda import RunnableGenerator, RunnableLambda
from chatledger.runtime._messages import coerce_messages
from chatledger.runtime._passthrough import RunnableAssign, RunnablePassthrough
from chatledger.runtime._prompts import ChatPromptTemplate, ChatPromptValue, MessagesPlaceholder
from chatledger.runtime._recording import (
    CallRecorder,
    ModelCall,
    recording,
    restore_chain_input,
)
from chatledger.runtime._runnable import (
    Runnable,
    RunnableBinding,
    RunnableSequence,
    coerce_to_runnable,
)
from chatledger.runtime._with_history import RunnableWithMessageHistory

__all__ = [
    "AIMessage",
    "AIMessageChunk",
    "AnyMessage",
    "CallRecorder",
    "ChatMessage",
    "ChatPromptTemplate",
    "ChatPromptValue",
    "ConfigurableFieldSpec",
    "FunctionMessage",
    "HumanMessage",
    "Message",
    "MessagesPlaceholder",
    "ModelCall",
    "Runnable",
    "RunnableAssign",
    "RunnableBinding",
    "RunnableConfig",
    "RunnableGenerator",
    "RunnableLambda",
    "RunnableParallel",
    "RunnablePassthrough",
    "RunnableSequence",
    "RunnableWithMessageHistory",
    "SystemMessage",
    "ToolMessage",
    "coerce_messages",
    "coerce_to_runnable",
    "ensure_config",
    "output_messages",
    "recording",
    "restore_chain_input",
    "runnable_input",
]
