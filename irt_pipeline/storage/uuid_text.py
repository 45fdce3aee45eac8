"""UUIDs between their 16 wire bytes (numpy ``V16``) and canonical text, vectorized: a read turns
only its distinct ids into Python strings, once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DASHES = (8, 13, 18, 23)
_DIGITS = np.array([k for k in range(36) if k not in _DASHES])  # where the 32 hex digits go


def uuid_strings(values: np.ndarray) -> tuple[str, ...]:
    """16-byte UUIDs as lowercase canonical strings (``uuid::text`` spelling)."""
    raw = np.ascontiguousarray(values).view(np.uint8).reshape(-1, 16)
    nibbles = np.empty((len(raw), 32), dtype=np.uint8)
    nibbles[:, 0::2] = raw >> 4
    nibbles[:, 1::2] = raw & 0x0F
    text = np.full((len(raw), 36), ord("-"), dtype=np.uint8)
    text[:, _DIGITS] = _HEX[nibbles]
    return tuple(text.view("S36").ravel().astype("U36").tolist())


def uuid_bytes(strings: Sequence[str]) -> np.ndarray:
    """Canonical UUID strings (any case; e.g. from ``uuid::text``) as 16-byte values."""
    if not strings:
        return np.zeros(0, dtype="V16")
    if any(len(value) != 36 for value in strings):
        raise ValueError("not canonical 36-character UUID strings")
    return np.frombuffer(bytes.fromhex("".join(strings).replace("-", "")), dtype="V16")
