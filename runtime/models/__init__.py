"""Chat models: the ``ChatModel`` base and the models built on it.

``FakeChatModel`` replies from a script (for tests), ``OfflineChatModel`` needs no network (the
demo's default), and ``OpenAIChatModel`` talks to any OpenAI-compatible server.
"""

from __future__ import annotations

from chatledger.runtime._messages import coerce_messages
from chatledger.runtime.models._base import ChatModel
from chatledger.runtime.models._errors import (
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelResponseError,
    ModelServerError,
    ModelTimeoutError,
)
from chatledger.runtime.models._fake import FakeChatModel
from chatledger.runtime.models._offline import OfflineChatModel
from chatledger.runtime.models._openai import OpenAIChatModel

__all__ = [
    "ChatModel",
    "FakeChatModel",
    "ModelAuthenticationError",
    "ModelConnectionError",
    "ModelError",
    "ModelHTTPError",
    "ModelNotFoundError",
    "ModelRateLimitError",
    "ModelResponseError",
    "ModelServerError",
    "ModelTimeoutError",
    "OfflineChatModel",
    "OpenAIChatModel",
    "coerce_messages",
]
