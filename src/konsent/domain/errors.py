"""Domain errors: a stable code and a translatable message a person can act on."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every rule violation; `code` is stable, `message` is an English msgid."""

    code = "domain_error"
    message = "The request could not be carried out."
    status = 400

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
    status = 404


class InvalidInput(DomainError):
    code = "invalid_input"
    message = "{detail}"
    status = 422


class NoLegalBasis(DomainError):
    """A send was refused because its purpose has no valid legal basis (C5)."""

    code = "no_legal_basis"
    message = "No legal basis for purpose {purpose}: {reason}"
    status = 409


class Conflict(DomainError):
    code = "conflict"
    message = "{detail}"
    status = 409


class PermissionDenied(DomainError):
    code = "forbidden"
    message = "You may not do this."
    status = 403


class WindowClosed(DomainError):
    """Free text outside the channel's customer-service window (CH3, M3)."""

    code = "window_closed"
    message = "The {hours}-hour window of this channel is closed: only an approved template may be sent."
    status = 409
