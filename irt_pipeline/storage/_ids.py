"""UUID parsing with the brief's VALIDATION_ERROR instead of a database error."""

from __future__ import annotations

import uuid

from irt_pipeline.errors import ValidationError


def parse_uuid(value: object, what: str) -> uuid.UUID:
    """``value`` as a UUID; ValidationError naming ``what`` and the value when it is not one."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError(f"{what} is not a UUID: {value!r}") from None


def uuid_or_none(value: object) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it is not one (lookups answer "not found")."""
    try:
        return parse_uuid(value, "id")
    except ValidationError:
        return None
