"""Errors of chat models that talk to a server. Every message names the server and the status.

    ChatledgerError                      (eventstore's root)
    └── ModelError                       a chat model call failed; ``base_url`` names the server
        ├── ModelConnectionError         the server could not be reached (also a ConnectionError)
        ├── ModelTimeoutError            no answer within the timeout (also a TimeoutError)
        ├── ModelHTTPError               the server answered with an error status (``status``)
        │   ├── ModelAuthenticationError     401/403: missing or wrong API key
        │   ├── ModelNotFoundError           404: wrong base URL or unknown model
        │   ├── ModelRateLimitError          429: too many requests (retried)
        │   └── ModelServerError             5xx: the server failed (retried)
        └── ModelResponseError           a reply that is not the protocol: bad JSON, a cut stream

The underlying ``httpx`` error, if any, stays on ``__cause__``. No message ever contains the
API key, even when the server echoes it back.
"""

from __future__ import annotations

from chatledger.eventstore import ChatledgerError

__all__ = [
    "ModelAuthenticationError",
    "ModelConnectionError",
    "ModelError",
    "ModelHTTPError",
    "ModelNotFoundError",
    "ModelRateLimitError",
    "ModelResponseError",
    "ModelServerError",
    "ModelTimeoutError",
    "http_error",
]


class ModelError(ChatledgerError):
    """A chat model call failed.

    Attributes:
        base_url: The server that was called (with any password in it masked).
    """

    def __init__(self, message: str, *, base_url: str) -> None:
        super().__init__(message)
        self.base_url = base_url


class ModelConnectionError(ModelError, ConnectionError):
    """The server could not be reached: refused, reset, DNS failure."""


class ModelTimeoutError(ModelError, TimeoutError):
    """The server did not answer (or stopped streaming) within the timeout."""


class ModelHTTPError(ModelError):
    """The server answered with an error status.

    Attributes:
        status: The HTTP status code.
        body: The server's error text (with the API key masked), possibly empty.
    """

    def __init__(self, message: str, *, base_url: str, status: int, body: str = "") -> None:
        super().__init__(message, base_url=base_url)
        self.status = status
        self.body = body


class ModelAuthenticationError(ModelHTTPError):
    """401 or 403: the API key is missing, wrong or not allowed to use this model."""


class ModelNotFoundError(ModelHTTPError):
    """404: the base URL has no Chat Completions endpoint, or the model is unknown."""


class ModelRateLimitError(ModelHTTPError):
    """429: too many requests; retried with backoff before it is raised."""


class ModelServerError(ModelHTTPError):
    """5xx: the server failed; retried with backoff before it is raised."""


class ModelResponseError(ModelError):
    """The reply does not follow the protocol: malformed JSON, an error event, a cut stream."""


def http_error(message: str, *, base_url: str, status: int, body: str = "") -> ModelHTTPError:
    """The ``ModelHTTPError`` subclass for an HTTP status."""
    cls: type[ModelHTTPError]
    if status in (401, 403):
        cls = ModelAuthenticationError
    elif status == 404:
        cls = ModelNotFoundError
    elif status == 429:
        cls = ModelRateLimitError
    elif status >= 500:
        cls = ModelServerError
    else:
        cls = ModelHTTPError
    return cls(message, base_url=base_url, status=status, body=body)
