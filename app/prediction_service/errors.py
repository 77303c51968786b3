"""The app's refusals: each one line naming what to fix; the entry point prints it and exits non-zero."""

from __future__ import annotations


class ServiceError(Exception):
    """A refusal to start or to migrate, printed as one line (never a traceback)."""


class SettingsError(ServiceError):
    """The environment does not configure the app (a variable missing or invalid)."""


class SecretError(ServiceError):
    """The database secret is missing, unreadable or not the RDS secret shape."""


class MigrationError(ServiceError):
    """A schema migration failed; the transaction was rolled back and the schema is as it was."""


class EndpointAnswerError(Exception):
    """The endpoint answered, but not with a prediction (wrong shape, content type or bytes)."""
