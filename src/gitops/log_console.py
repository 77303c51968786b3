"""The CLI's stderr: rich lines on a terminal (unchanged), timestamped and levelled lines in a build log.

In CodeBuild (CODEBUILD_BUILD_ID is set and stderr is no terminal), or when GITOPS_LOG_LINES=1,
every line becomes `2026-12-08T00:41:02Z INFO  deploy mlops-dev-base: ...`: plain text that a
CloudWatch reader can follow, filter by level and line up with the build's phases. `--quiet` drops
progress (warnings and errors stay); `--verbose` adds DEBUG lines, including the engine's and
botocore's Python logging (which credentials, which endpoint, each retry).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.text import Text

LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}
LOG_LINES_ENV = "GITOPS_LOG_LINES"
_VERBOSE_LOGGERS = ("gitops", "botocore.credentials", "botocore.retryhandler", "botocore.endpoint")


def log_lines_wanted(stream: Any = None) -> bool:
    """Log lines in a build (CodeBuild, or GITOPS_LOG_LINES=1); a terminal keeps rich's output."""
    forced = os.environ.get(LOG_LINES_ENV)
    if forced is not None:
        return forced not in ("", "0", "false")
    stream = stream or sys.stderr
    return bool(os.environ.get("CODEBUILD_BUILD_ID")) and not stream.isatty()


class LogConsole(Console):
    """A rich Console whose print takes a level; below the threshold nothing is printed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = logging.INFO
        self.log_lines = False

    def configure(self, *, verbose: bool = False, quiet: bool = False, log_lines: bool | None = None) -> None:
        self.threshold = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
        self.log_lines = log_lines_wanted(self.file) if log_lines is None else log_lines
        if verbose:
            handler = _ConsoleHandler(self)
            for name in _VERBOSE_LOGGERS:
                logger = logging.getLogger(name)
                logger.setLevel(logging.DEBUG)
                logger.addHandler(handler)

    def print(self, *objects: Any, level: str = "INFO", **kwargs: Any) -> None:
        if LEVELS.get(level, logging.INFO) < self.threshold:
            return
        if not self.log_lines or not all(isinstance(o, str | Text) for o in objects):
            super().print(*objects, **kwargs)
            return
        markup = kwargs.get("markup")
        parts = [
            o.plain if isinstance(o, Text) else (Text.from_markup(o).plain if markup is not False else o)
            for o in objects
        ]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for line in " ".join(parts).splitlines() or [""]:
            self.file.write(f"{stamp} {level:<5} {line}\n")
        self.file.flush()


class _ConsoleHandler(logging.Handler):
    """Python logging records (with --verbose) as console lines at their level."""

    def __init__(self, console: LogConsole) -> None:
        super().__init__(logging.DEBUG)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        level = "DEBUG" if record.levelno < logging.INFO else logging.getLevelName(record.levelno)
        level = level if level in LEVELS else "ERROR"
        self.console.print(f"{record.name}: {record.getMessage()}", level=level, markup=False, soft_wrap=True)
