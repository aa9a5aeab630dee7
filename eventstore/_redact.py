"""Secrets stay out of messages: database URLs are shown without their passwords."""

from __future__ import annotations

import re

__all__ = ["SECRET_NAME", "redact_url"]


# Every parameter whose name says it holds a secret: password, sslpassword, passfile-less
# passphrases, tokens, API keys, client secrets.
SECRET_NAME = re.compile(r"pass|secret|token|api_?key|credential", re.IGNORECASE)
_QUERY_SECRET = re.compile(r"([?&]([^&#=]*)=)([^&#]*)")


def _hide(match: re.Match[str]) -> str:
    return f"{match.group(1)}***" if SECRET_NAME.search(match.group(2)) else match.group(0)


def redact_url(url: str) -> str:
    """The URL without its secrets (the userinfo's password and every password-, token- or
    key-like query parameter such as ``password=`` or ``sslpassword=``), fit for an error
    message or a log line."""
    url = _QUERY_SECRET.sub(_hide, url)
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
