"""Domain errors: each carries a stable code that adapters map to HTTP or dead-letter reasons."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every refusal made by a domain rule."""

    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class ValidationError(DomainError):
    """Input that breaks a rule of form (a bad field, a bad check character)."""

    code = "invalid"


class NotFoundError(DomainError):
    """A referenced object does not exist, or the caller may not see it."""

    code = "not-found"


class ConflictError(DomainError):
    """The request clashes with the current state (stale version, logger in use)."""

    code = "conflict"


class PermissionDeniedError(DomainError):
    """The caller's role does not allow the action."""

    code = "forbidden"


class AuthenticationError(DomainError):
    """The caller did not prove who they are (a wrong password at signing)."""

    code = "unauthenticated"
