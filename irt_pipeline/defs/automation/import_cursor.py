"""The cursor of `exam_import_sensor`: where the attempt feed has been read to, and since when
it has been quiet (pure; no Dagster, no database).

Stored as JSON in the sensor's cursor::

    {"handled_id": 1200, "scanned_id": 1500, "banks": ["algebra"],
     "latest_id": 1500, "latest_seen_at": 1767600000.0}

* ``handled_id``: every attempt with ``id <= handled_id`` has been turned into run requests;
* ``scanned_id``: attempts ``(handled_id, scanned_id]`` have been read, and touched ``banks``;
* ``latest_id``/``latest_seen_at``: the highest attempt id at the last tick, and the time (unix
  seconds) it was first seen. An import is *quiet* once ``latest_id`` has not moved for the
  configured number of minutes.

A plain integer is accepted too (``dagster sensor cursor exam_import_sensor --set 123456``):
everything up to that id counts as handled, e.g. to skip the history when the sensor is first
turned on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class ImportCursor:
    handled_id: int = 0
    scanned_id: int = 0
    banks: tuple[str, ...] = ()
    latest_id: int = 0
    latest_seen_at: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> ImportCursor:
        """The cursor stored by `serialize`, an integer id, or the start (None/empty)."""
        if not text or not text.strip():
            return cls()
        text = text.strip()
        if text.lstrip("-").isdigit():
            handled = max(int(text), 0)
            return cls(handled_id=handled, scanned_id=handled, latest_id=handled)
        try:
            data = json.loads(text)
            cursor = cls(
                handled_id=int(data["handled_id"]),
                scanned_id=int(data["scanned_id"]),
                banks=tuple(sorted(str(b) for b in data.get("banks", ()))),
                latest_id=int(data["latest_id"]),
                latest_seen_at=float(data["latest_seen_at"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable exam_import_sensor cursor {text!r}: {exc}") from None
        if cursor.scanned_id < cursor.handled_id:
            raise ValueError(f"unreadable exam_import_sensor cursor {text!r}: scanned_id < handled_id")
        return cursor

    def serialize(self) -> str:
        data = asdict(self)
        data["banks"] = list(self.banks)
        return json.dumps(data, sort_keys=True)

    def observe(self, latest_id: int, now: float) -> ImportCursor:
        """Record the table's current highest id; a new value restarts the quiet period."""
        if latest_id == self.latest_id and self.latest_seen_at:
            return self
        # rows deleted since (max id went down): never scan beyond what exists
        scanned = min(self.scanned_id, max(latest_id, self.handled_id))
        return replace(self, latest_id=latest_id, latest_seen_at=now, scanned_id=scanned)

    def scanned(self, upto_id: int, banks: tuple[str, ...] | list[str]) -> ImportCursor:
        """Attempts up to `upto_id` read; `banks` are the banks they touched."""
        return replace(self, scanned_id=upto_id, banks=tuple(sorted(set(self.banks) | set(banks))))

    def quiet_for(self, now: float) -> float:
        """Seconds since the highest attempt id last changed."""
        return max(now - self.latest_seen_at, 0.0)

    def handled(self) -> ImportCursor:
        """Everything scanned has been requested: start over after it."""
        return replace(self, handled_id=self.scanned_id, banks=())
