"""Errors of the operator layer; the HTTP fronts turn them into 404 and 4xx answers."""

from __future__ import annotations


class NotFound(LookupError):
    """No device (or inventory row) with that serial."""


class ActionError(ValueError):
    """An action cannot be done as asked; the message says why (a 4xx for HTTP)."""


class Conflict(ActionError):
    """What the action would create exists already (a user name taken): 409 for HTTP."""
