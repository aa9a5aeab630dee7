"""Secrets stay out of messages: database URLs are shown without their passwords."""

from __future__ import annotations

import re

__all__ = ["redact_url"]


_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """The URL without its password (in the userinfo or a ``password=`` parameter), fit for
    an error message or a log line."""
    url = _QUERY_PASSWORD.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
