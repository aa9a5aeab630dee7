"""Logging through structlog, configured only by the application (or the CLI).

An application that never configured structlog gets no output from chatledger: structlog's
default prints every level to stdout, which would put a line per append into the app's output.
"""

from __future__ import annotations

from typing import Any

import structlog

__all__ = ["get_logger", "logging_enabled"]


def get_logger(name: str) -> Any:
    """A structlog logger bound to ``logger=name``."""
    return structlog.get_logger(name)


def logging_enabled() -> bool:
    """True once the application has configured structlog (tests' ``capture_logs`` does too)."""
    return structlog.is_configured()
