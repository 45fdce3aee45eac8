"""Turning a failed step into the brief's error code and message (pure, no Dagster objects).

Used by the failure hook (which sees the exception), the failure sensor and the CLI (which see
Dagster's serialized error of the failed step). Every message starts with a code of
`irt_pipeline.errors`: an `IrtError` keeps its own message, anything else becomes
``CALIBRATION_FAILED: <step>: <ExceptionType>: <message>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pydantic

from irt_pipeline import errors

CODES = (
    errors.ValidationError.code,
    errors.InsufficientDataError.code,
    errors.CalibrationInProgressError.code,
    errors.CalibrationFailedError.code,
    errors.ItemNotFoundError.code,
    errors.StudentNotFoundError.code,
)
_CODE_RE = re.compile(r"\b(" + "|".join(CODES) + r"): ")
MAX_MESSAGE = 2000


def _clip(message: str) -> str:
    message = message.strip()
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def failure_message(step: str, exc: BaseException | None) -> str:
    """The error stored on the audit row for a step that raised `exc`."""
    if isinstance(exc, errors.IrtError):
        return _clip(str(exc))
    if exc is None:
        return f"{errors.CalibrationFailedError.code}: step {step} failed"
    if isinstance(exc, pydantic.ValidationError):
        return _clip(f"{errors.ValidationError.code}: {step}: {exc}")
    if type(exc).__name__ == "DagsterAssetCheckFailedError":
        detail = " ".join(str(exc).split())
        return _clip(f"{errors.CalibrationFailedError.code}: publication stopped by a blocking check: {detail}")
    return _clip(f"{errors.CalibrationFailedError.code}: {step}: {type(exc).__name__}: {exc}")


def coded_message(texts: Iterable[str]) -> str | None:
    """The first ``CODE: ...`` found in `texts` (e.g. Dagster's error chain), up to its line end."""
    for text in texts:
        match = _CODE_RE.search(text or "")
        if match:
            return _clip(text[match.start():].splitlines()[0])
    return None


def error_chain(error_info) -> list[str]:
    """Messages of a SerializableErrorInfo and its causes/contexts, innermost cause last."""
    out: list[str] = []
    seen = 0
    while error_info is not None and seen < 20:
        out.append(error_info.message or "")
        error_info = error_info.cause or error_info.context
        seen += 1
    return out


def message_from_error_info(step: str, error_info) -> str:
    """Audit-row message from the serialized error of a failed step."""
    chain = error_chain(error_info)
    found = coded_message(chain)
    if found:
        return found
    if any("pydantic_core._pydantic_core.ValidationError" in m for m in chain):
        return _clip(f"{errors.ValidationError.code}: {step}: {chain[-1]}")
    if any("DagsterAssetCheckFailedError" in m for m in chain):
        detail = " ".join(chain[-1].split())
        return _clip(f"{errors.CalibrationFailedError.code}: publication stopped by a blocking check: {detail}")
    innermost = chain[-1] if chain else ""
    return _clip(f"{errors.CalibrationFailedError.code}: {step}: {innermost}")


def code_of(message: str) -> str:
    """The error code a message starts with (CALIBRATION_FAILED when none)."""
    match = _CODE_RE.match(message or "")
    return match.group(1) if match else errors.CalibrationFailedError.code
