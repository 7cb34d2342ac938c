"""Domain errors: a stable code and a translatable message a person can act on.

No HTTP here: web/errors.py maps each code to a status and renders the message in the
reader's language (`message` is an English msgid, `params` fill its placeholders).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every rule violation; `code` is stable, `message` is an English msgid."""

    code = "domain_error"
    message = "The request could not be carried out."

    def __init__(self, message: str | None = None, **params: Any) -> None:
        self.params = params
        if message is not None:
            self.message = message
        super().__init__(self.message.format(**params) if params else self.message)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": str(self),
            **{k: str(v) for k, v in self.params.items()},
        }


class NotFound(DomainError):
    code = "not_found"
    message = "Not found."


class InvalidInput(DomainError):
    code = "invalid_input"
    message = "{detail}"


class NoLegalBasis(DomainError):
    """A send was refused because its purpose has no valid legal basis (C5)."""

    code = "no_legal_basis"
    message = "No legal basis for purpose {purpose}: {reason}"


class Conflict(DomainError):
    code = "conflict"
    message = "{detail}"


class PermissionDenied(DomainError):
    code = "forbidden"
    message = "You may not do this."


class WindowClosed(DomainError):
    """Free text outside the channel's customer-service window (CH3, M3)."""

    code = "window_closed"
    message = "The {hours}-hour window of this channel is closed: only an approved template may be sent."


class FileTooLarge(DomainError):
    """An agent's attachment over the installation's size limit (M1)."""

    code = "file_too_large"
    message = "The file is larger than {limit} MB."


class FileTypeRefused(DomainError):
    """An agent's attachment of a type the installation does not accept (M1)."""

    code = "file_type_refused"
    message = "Files of this type cannot be attached: {mime}."
