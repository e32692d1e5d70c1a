"""Reading the history: ``qwen_magics.history`` finds, brings back, deletes and exports answers.

``history(q="salt", since="1h")`` is a DataFrame of the answers, newest first; ``history.get(id)``
a ``Response`` built from the row, which displays as the original did; ``history.delete(...)`` and
``history.export(path)`` (JSON lines, readable by the owner only). The rows come from
``historydb``; reading first waits for this process's answers still queued, so an answer is
found as soon as its cell ends. pandas is imported by the call that needs it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import historydb
from .api.replay import rebuild, when
from .api.response import Response
from .errors import ParameterError, QwenError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["History", "history", "parse_since"]

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|days|w|week|weeks)$")
_UNIT = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400}
_UNIT.update(days=86400, w=604800, week=604800, weeks=604800)
SINCE_HELP = (
    "write a date (2026-12-01), a date and time (2026-12-01 14:30), a time ago (30m, 1h, 2d) or yesterday"
)
JSON_COLUMNS = ("messages", "params", "schema", "data")


def parse_since(value: Any, *, now: float | None = None) -> float | None:
    """``since`` as unix seconds: a date, a datetime, seconds, or text (``2026-12-01``, ``1h``,
    ``30m``, ``2d``, ``today``, ``yesterday``). Raises ParameterError saying what to write."""
    if value is None:
        return None
    now = time.time() if now is None else now
    if isinstance(value, bool):
        raise ParameterError("since", f"since={value!r}: {SINCE_HELP}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, _dt.date):
        return _dt.datetime.combine(value, _dt.time()).timestamp()
    text = str(value).strip().lower()
    midnight = _dt.datetime.combine(_dt.date.fromtimestamp(now), _dt.time())
    if text == "today":
        return midnight.timestamp()
    if text == "yesterday":
        return (midnight - _dt.timedelta(days=1)).timestamp()
    ago = _AGO.match(text)
    if ago:
        return now - float(ago.group(1)) * _UNIT[ago.group(2)]
    try:
        return _dt.datetime.fromisoformat(text.upper() if "t" in text else text).timestamp()
    except ValueError:
        raise ParameterError("since", f"could not read {value!r}; {SINCE_HELP}") from None


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in JSON_COLUMNS:
        if out.get(name) is not None:
            try:
                out[name] = json.loads(out[name])
            except ValueError:
                pass
    return out


class History:
    """The recorded answers. Call it for a DataFrame; ``get``, ``delete`` and ``export`` the rows."""

    @property
    def path(self) -> Path | None:
        """The database answers go to (None: the history is off)."""
        return historydb.path()

    def __repr__(self) -> str:
        where = self.path
        if where is None:
            return "<History off (QWEN_HISTORY=off)>"
        return f"<History {where}: {historydb.count(where):,} answers>"

    def _where(self) -> Path:
        where = self.path
        if where is None:
            raise QwenError(
                "the history is off (QWEN_HISTORY=off or QwenMagics.history = 'off'); "
                "set QWEN_HISTORY to a file to record and read answers"
            )
        historydb.flush(timeout=10)  # this process's answers still queued
        return where

    def rows(
        self, q: str | None = None, model: str | None = None, since: Any = None, limit: int | None = 50
    ) -> list[dict[str, Any]]:
        """The matching rows, newest first, as dicts (JSON columns decoded)."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ParameterError(
                "limit", f"limit must be a whole number >= 1, or None for all; got {limit!r}"
            )
        found = historydb.search(self._where(), q=q, model=model, since=parse_since(since), limit=limit)
        return [_decoded(r) for r in found]

    def __call__(
        self, q: str | None = None, model: str | None = None, since: Any = None, limit: int | None = 50
    ) -> pd.DataFrame:
        """Answers newest first: ``q`` all these words (in the prompt, system prompt or answer),
        ``model``, ``since`` (``"1h"``, ``"2026-12-01"``, ``"yesterday"``), at most ``limit``."""
        import pandas as pd

        rows = self.rows(q, model, since, limit)
        columns = ["id", *historydb.COLUMNS]
        df = pd.DataFrame(rows, columns=columns)
        df["time"] = pd.to_datetime(df["time"], unit="s", utc=True).dt.tz_convert(_local_zone())
        counts = [c for c in columns if c.endswith("_tokens")] + ["cell", "attempts", "sample"]
        df[counts] = df[counts].astype("Int64")
        for name in ("offline", "incomplete", "interrupted"):
            df[name] = df[name].astype(bool)
        return df.set_index("id")

    def get(self, id: int | str) -> Response:
        """The answer ``id`` as a Response: text, reasoning, usage, timings, data, as recorded."""
        row = historydb.fetch(self._where(), id)
        if row is None:
            raise QwenError(f"no answer {id!r} in the history ({self.path}); `%qwen log` lists them")
        return _response(_decoded(row))

    def delete(
        self,
        id: int | Iterable[int] | None = None,
        *,
        q: str | None = None,
        model: str | None = None,
        since: Any = None,
        all: bool = False,
    ) -> int:
        """Delete answers: by id (or a list of ids), by words, model or time; ``all=True`` for
        every one. Returns how many went."""
        ids = None if id is None else ([id] if isinstance(id, int | str) else list(id))
        if ids is None and not (q or model or since is not None) and not all:
            raise ParameterError(
                "delete",
                "say which answers to delete: delete(12), delete([3, 4]), delete(q='words'), "
                "delete(since='1h') or delete(all=True)",
            )
        return historydb.delete(
            self._where(),
            q=q,
            model=model,
            since=parse_since(since),
            ids=[int(i) for i in ids] if ids is not None else None,
        )

    def export(
        self,
        path: str | os.PathLike[str],
        *,
        q: str | None = None,
        model: str | None = None,
        since: Any = None,
    ) -> int:
        """Write the matching answers, oldest first, as JSON lines to ``path`` (made 0600: prompts are
        private). Returns how many were written."""
        rows = self.rows(q, model, since, limit=None)
        target = Path(path).expanduser()
        fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        os.chmod(target, 0o600)
        with open(fd, "w", encoding="utf-8") as out:
            for row in reversed(rows):
                out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        return len(rows)


def _local_zone() -> _dt.tzinfo:
    return _dt.datetime.now().astimezone().tzinfo or _dt.timezone.utc


def _response(row: dict[str, Any]) -> Response:
    """A finished Response from a row: the events it streamed, its timings and structured data
    (rebuilt as replay rebuilds its answers)."""
    response = rebuild(row, note=f"from the history, {when(row['time'])}")
    response.history_id = row.get("uid")
    return response


history = History()
