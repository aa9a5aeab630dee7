"""structlog configuration for the command line: the only place chatledger configures logging."""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging", "reset_logging"]


def configure_logging(*, verbosity: int, as_json: bool) -> None:
    """Log to stderr: warnings by default, info with ``-v``, debug with ``-vv``.

    Console lines on a terminal (colours only there), one JSON object per line with
    ``as_json``.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    renderer: structlog.types.Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Back to structlog's defaults, so a host process (or a test) sees chatledger unconfigured."""
    structlog.reset_defaults()
