"""Stateless chain runtime: runnables, prompts, chat models and ``RunnableWithMessageHistory``.

Nothing here holds conversation state between calls: histories live in the log, and
``RunnableWithMessageHistory`` reads them before a run and appends the turn after it.
"""

from __future__ import annotations

from eventstore import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from runtime._compose import RunnableParallel, RunnableSequence, coerce_to_runnable
from runtime._config import ConfigurableFieldSpec, RunnableConfig, ensure_config
from runtime._lambda import RunnableGenerator, RunnableLambda
from runtime._messages import coerce_messages
from runtime._passthrough import RunnableAssign, RunnablePassthrough
from runtime._prompts import ChatPromptTemplate, ChatPromptValue, MessagesPlaceholder
from runtime._runnable import Runnable, RunnableBinding
from runtime._with_history import RunnableWithMessageHistory

__all__ = [
    "AIMessage",
    "AIMessageChunk",
    "ChatMessage",
    "ChatPromptTemplate",
    "ChatPromptValue",
    "ConfigurableFieldSpec",
    "HumanMessage",
    "MessagesPlaceholder",
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
]
