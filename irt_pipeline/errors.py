"""Error codes of the brief (section 5), shared by every layer.

Each exception's message starts with its code, so a Dagster run failure, a CLI exit message
and a log line all name the reason the same way: ``INSUFFICIENT_DATA: no item of bank 'demo' ...``.
"""

from __future__ import annotations


class IrtError(Exception):
    """Base class; ``code`` is one of the brief's error codes."""

    code = "CALIBRATION_FAILED"

    def __init__(self, message: str) -> None:
        self.detail = message
        super().__init__(f"{self.code}: {message}")


class ValidationError(IrtError):
    """A config field or an input value is out of range (HTTP 400 in the brief)."""

    code = "VALIDATION_ERROR"


class InsufficientDataError(IrtError):
    """No item meets the minimum response threshold (HTTP 400 in the brief)."""

    code = "INSUFFICIENT_DATA"


class CalibrationInProgressError(IrtError):
    """Another calibration of the same item bank is running (HTTP 409 in the brief)."""

    code = "CALIBRATION_IN_PROGRESS"


class CalibrationFailedError(IrtError):
    """The calibration or its publication failed (HTTP 500 in the brief)."""

    code = "CALIBRATION_FAILED"


class ItemNotFoundError(IrtError):
    """No calibrated parameters exist for the item (HTTP 404 in the brief)."""

    code = "ITEM_NOT_FOUND"


class StudentNotFoundError(IrtError):
    """No ability of the student on the bank from a completed run (not the brief's: issue 9)."""

    code = "STUDENT_NOT_FOUND"
