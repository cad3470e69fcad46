"""What a console request can fail with; the app's handlers (`webui.handlers`) turn each into a page or JSON."""

from __future__ import annotations


class AuthRequired(Exception):
    """No valid credentials: pages redirect to the login form, the API answers 401."""


class Forbidden(Exception):
    """Authenticated, but the role does not allow this."""


class CsrfFailed(Exception):
    """A state-changing request without the right CSRF token."""


class ServiceError(ValueError):
    """A request that cannot be done; the message is for the user, ``status`` the HTTP status."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UserError(ServiceError):
    """A user-management request that cannot be done (bad name, weak password, last admin...)."""

    status = 422
