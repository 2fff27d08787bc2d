"""The base of the operator reports: ``to_dict()`` gives their JSON form."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["Report"]


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


class Report:
    """Base of the reports: ``to_dict()`` gives the JSON form."""

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (times in ISO 8601 UTC, paths as strings)."""
        result: dict[str, Any] = _json(asdict(self))  # type: ignore[call-overload]
        return result
