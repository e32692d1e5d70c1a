"""The history database: every answer a row of a local SQLite file, written off the asking thread.

Where: ``use(path)`` (the magics' ``QwenMagics.history``), else ``QWEN_HISTORY`` (a path, or
``off``), else ``~/.qwen-magics/history.db``. Prompts are private: a folder made here is 0700 and
the file 0600 (SQLite gives its ``-wal`` and ``-shm`` files the database's mode). WAL mode lets
several kernels write at once; FTS5 indexes the prompt, the system prompt and the answer. The
schema grows by numbered ``MIGRATIONS`` counted in ``PRAGMA user_version``, as simonw/llm's does.

``write(path, row)`` only queues the row; one daemon thread, ``qwen-history``, takes everything
queued, writes it in one transaction and waits for more; idle for ``IDLE`` seconds, it ends, and
the next answer starts another. It is a plain thread, not a ``runner.Background``: SQLite's calls
block, and this work outlives the cell that started it. A database that cannot be written (locked
past ``BUSY_TIMEOUT``, read-only, corrupt) gives one ``HistoryWarning`` per path and its answers
go unrecorded; nothing is raised into the code that asked. Rows are built from the request body and
the answer (``api/record.py``), never from headers: the key is not in the database.
"""

from __future__ import annotations

import os
import queue
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "BUSY_TIMEOUT",
    "COLUMNS",
    "DEFAULT_PATH",
    "HistoryWarning",
    "count",
    "delete",
    "fetch",
    "flush",
    "replayable",
    "match_expression",
    "path",
    "search",
    "update",
    "use",
    "write",
]

DEFAULT_PATH = Path("~/.qwen-magics/history.db")
OFF = "off"
BUSY_TIMEOUT = 3.0  # seconds a write waits for another process's transaction before giving up
IDLE = 1.0  # seconds the writer thread waits for more before it ends (the next answer starts one)

# the answers table, in order; api/record.py builds rows with these keys
COLUMNS = (
    "uid",  # made by the process that asked: what a later update (structured data) finds
    "time",  # unix seconds when the answer finished
    "model",
    "host",  # the server's host[:port], never its userinfo
    "region",  # the DashScope region whose URL that is, else NULL
    "offline",
    "prompt",  # the last user message, for search and the log table
    "system",
    "messages",  # JSON: the messages sent
    "params",  # JSON: the rest of the request body (temperature, enable_thinking, stream, ...)
    "text",
    "reasoning",
    "prompt_tokens",  # the usage counts: NULL when the server never reported them
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "total_tokens",
    "ttft",
    "elapsed",
    "cost",  # estimated USD, NULL when unknown
    "finish_reason",
    "incomplete",
    "interrupted",
    "error",
    "request_id",
    "attempts",  # HTTP tries of this request (429/5xx retries)
    "fingerprint",  # sha256 of the canonical request: what replay will look up
    "notebook",
    "cell",  # the execution count of the cell that asked
    "cell_id",  # the front end's id of that cell (JupyterLab, VS Code)
    "source",  # compare, apply, panel; NULL for a cell or ask()
    "group_id",  # the cells of one comparison, the rows of one apply job
    "label",  # the comparison cell's label, the apply row's index
    "sample",  # the sample index inside a comparison (0 elsewhere)
    "schema",  # JSON Schema a structured answer was checked against
    "data",  # JSON: the parsed structured answer
    "tool_calls",  # JSON: the calls this answer asked for and what came of each (a tool loop's step)
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE answers (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            time REAL NOT NULL,
            model TEXT, host TEXT, region TEXT, offline INTEGER NOT NULL DEFAULT 0,
            prompt TEXT, system TEXT, messages TEXT NOT NULL, params TEXT NOT NULL,
            text TEXT, reasoning TEXT,
            prompt_tokens INTEGER, completion_tokens INTEGER, reasoning_tokens INTEGER,
            cached_tokens INTEGER, total_tokens INTEGER,
            ttft REAL, elapsed REAL, cost REAL, finish_reason TEXT,
            incomplete INTEGER NOT NULL DEFAULT 0, interrupted INTEGER NOT NULL DEFAULT 0, error TEXT,
            request_id TEXT, attempts INTEGER, fingerprint TEXT NOT NULL,
            notebook TEXT, cell INTEGER, cell_id TEXT,
            source TEXT, group_id TEXT, label TEXT, sample INTEGER NOT NULL DEFAULT 0,
            schema TEXT, data TEXT
        )""",
        "CREATE INDEX answers_time ON answers (time)",
        "CREATE INDEX answers_fingerprint ON answers (fingerprint)",
        "CREATE INDEX answers_group ON answers (group_id)",
        """CREATE VIRTUAL TABLE answers_fts USING fts5(
            prompt, system, text, content='answers', content_rowid='id'
        )""",
        """CREATE TRIGGER answers_ai AFTER INSERT ON answers BEGIN
            INSERT INTO answers_fts (rowid, prompt, system, text)
            VALUES (new.id, new.prompt, new.system, new.text);
        END""",
        """CREATE TRIGGER answers_ad AFTER DELETE ON answers BEGIN
            INSERT INTO answers_fts (answers_fts, rowid, prompt, system, text)
            VALUES ('delete', old.id, old.prompt, old.system, old.text);
        END""",
        """CREATE TRIGGER answers_au AFTER UPDATE OF prompt, system, text ON answers BEGIN
            INSERT INTO answers_fts (answers_fts, rowid, prompt, system, text)
            VALUES ('delete', old.id, old.prompt, old.system, old.text);
            INSERT INTO answers_fts (rowid, prompt, system, text)
            VALUES (new.id, new.prompt, new.system, new.text);
        END""",
    ),
    ("ALTER TABLE answers ADD COLUMN tool_calls TEXT",),
)


class HistoryWarning(UserWarning):
    """The history could not be written; the answer itself is unaffected."""


# -- where ---------------------------------------------------------------------------------------
_chosen: str | None = None  # use(): the magics' QwenMagics.history


def use(value: str | os.PathLike[str] | None) -> None:
    """Record into ``value`` (a path, or ``off``); None goes back to QWEN_HISTORY or the default."""
    global _chosen
    _chosen = None if value is None else os.fspath(value)
    _warned.clear()


def path() -> Path | None:
    """The database answers are recorded in now; None when the history is off."""
    value = _chosen if _chosen is not None else os.environ.get("QWEN_HISTORY")
    if value is not None and value.strip().lower() == OFF:
        return None
    return Path(value.strip() if value and value.strip() else DEFAULT_PATH).expanduser()


# -- writing -------------------------------------------------------------------------------------
_queue: queue.SimpleQueue[tuple[Path, str, dict[str, Any]]] = queue.SimpleQueue()
_lock = threading.Condition()
_pending = 0
_writer: threading.Thread | None = None
_warned: set[Path] = set()


def write(where: Path, row: dict[str, Any]) -> None:
    """Queue a new row (a dict with ``COLUMNS`` as keys) for ``where``; returns at once."""
    _put(where, "insert", row)


def update(where: Path, uid: str, fields: dict[str, Any]) -> None:
    """Queue new values for some columns of the row ``uid`` (written after that row)."""
    _put(where, "update", {"uid": uid, **fields})


def _put(where: Path, kind: str, row: dict[str, Any]) -> None:
    global _pending, _writer
    with _lock:
        _pending += 1
        if _writer is None or not _writer.is_alive():
            _writer = threading.Thread(target=_main, name="qwen-history", daemon=True)
            _writer.start()
    _queue.put((where, kind, row))


def flush(timeout: float | None = None) -> bool:
    """Wait until every queued row is written (or given up on); False if ``timeout`` passed first."""
    with _lock:
        return _lock.wait_for(lambda: _pending == 0, timeout)


def _main() -> None:
    global _pending, _writer
    while True:
        try:
            batch = [_queue.get(timeout=IDLE)]
        except queue.Empty:
            with _lock:
                if _pending == 0:  # a _put after this starts a new writer
                    _writer = None
                    return
            continue
        while True:
            try:
                batch.append(_queue.get_nowait())
            except queue.Empty:
                break
        try:
            by_path: dict[Path, list[tuple[str, dict[str, Any]]]] = {}
            for where, kind, row in batch:
                by_path.setdefault(where, []).append((kind, row))
            for where, ops in by_path.items():
                _apply(where, ops)
        finally:
            with _lock:
                _pending -= len(batch)
                _lock.notify_all()


def _apply(where: Path, ops: list[tuple[str, dict[str, Any]]]) -> None:
    import sqlite3

    try:
        con = connect(where, create=True)
        assert con is not None
        try:
            con.execute("BEGIN IMMEDIATE")
            for kind, row in ops:
                if kind == "insert":
                    con.execute(_INSERT, [row.get(c) for c in COLUMNS])
                else:
                    names = [c for c in row if c in COLUMNS and c != "uid"]
                    assignments = ", ".join(f"{c} = ?" for c in names)
                    con.execute(
                        f"UPDATE answers SET {assignments} WHERE uid = ?",
                        [*(row[c] for c in names), row["uid"]],
                    )
            con.execute("COMMIT")
        finally:
            con.close()
    except (sqlite3.Error, OSError) as exc:
        _warn_once(where, exc)


_INSERT = f"INSERT OR IGNORE INTO answers ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"


def _warn_once(where: Path, exc: BaseException) -> None:
    if where in _warned:
        return
    _warned.add(where)
    why = str(exc) or type(exc).__name__
    try:
        warnings.warn(
            f"qwen history: could not write to {where} ({why}); answers are not being recorded there. "
            "The answers themselves are fine. Point QWEN_HISTORY (or QwenMagics.history) at another "
            "file, or set it to off.",
            HistoryWarning,
            stacklevel=1,
        )
    except Exception:  # warnings turned into errors: nobody is there to catch it in this thread
        pass


# -- the file --------------------------------------------------------------------------------------
def connect(where: Path, *, create: bool = False) -> sqlite3.Connection | None:
    """A connection with the schema up to date, autocommit; None when there is no database and
    ``create`` is false (reading an empty history makes no file)."""
    import sqlite3

    if not where.exists():
        if not create:
            return None
        _make(where)
    con = sqlite3.connect(where, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    try:
        con.row_factory = sqlite3.Row
        if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = NORMAL")
        _migrate(con)
    except BaseException:
        con.close()
        raise
    return con


def _make(where: Path) -> None:
    """An empty file readable by its owner only, in a folder made readable by its owner only."""
    folder = where.parent
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    fd = os.open(where, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(where, 0o600)


def _migrate(con: sqlite3.Connection) -> None:
    if con.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
        return
    con.execute("BEGIN IMMEDIATE")  # another process may be migrating the same file
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                con.execute(statement)
        con.execute(f"PRAGMA user_version = {max(version, len(MIGRATIONS))}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


# -- reading ---------------------------------------------------------------------------------------
def match_expression(words: str) -> str:
    """FTS5 syntax for "all these words": each quoted, so ``-``, ``:`` or ``"`` in them are text."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in words.split())


def _where(
    q: str | None, model: str | None, since: float | None, ids: Sequence[int] | None
) -> tuple[str, str, list[Any]]:
    """The FROM and WHERE of a query over ``answers a``. Words are looked up in the FTS index first,
    which hands its rowids newest first: a search stays quick however many rows match."""
    source = "answers a"
    clauses: list[str] = []
    args: list[Any] = []
    if q and q.split():
        source = "answers_fts f JOIN answers a ON a.id = f.rowid"
        clauses.append("answers_fts MATCH ?")
        args.append(match_expression(q))
    if model:
        clauses.append("a.model = ?")
        args.append(model)
    if since is not None:
        clauses.append("a.time >= ?")
        args.append(since)
    if ids is not None:
        clauses.append(f"a.id IN ({', '.join('?' for _ in ids)})")
        args.extend(ids)
    return source, (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def search(
    where: Path,
    *,
    q: str | None = None,
    model: str | None = None,
    since: float | None = None,
    ids: Sequence[int] | None = None,
    limit: int | None = 50,
) -> list[dict[str, Any]]:
    """Rows newest first (in the order they were written), each a dict with ``id`` and ``COLUMNS``;
    ``q``: all these words."""
    con = connect(where)
    if con is None:
        return []
    try:
        source, sql, args = _where(q, model, since, ids)
        order = "f.rowid" if source.startswith("answers_fts") else "a.id"
        tail = f" ORDER BY {order} DESC" + (" LIMIT ?" if limit is not None else "")
        query = f"SELECT a.* FROM {source}{sql}{tail}"
        return [dict(r) for r in con.execute(query, [*args, *([limit] if limit is not None else [])])]
    finally:
        con.close()


def fetch(where: Path, key: int | str) -> dict[str, Any] | None:
    """One row by its id (or its uid)."""
    con = connect(where)
    if con is None:
        return None
    try:
        column = "uid" if isinstance(key, str) and not key.isdigit() else "id"
        row = con.execute(f"SELECT * FROM answers WHERE {column} = ?", [key]).fetchone()
        return dict(row) if row is not None else None
    finally:
        con.close()


_WHOLE = "incomplete = 0 AND interrupted = 0 AND error IS NULL"


def replayable(
    where: Path, *, fingerprint: str | None = None, prompt: str | None = None
) -> list[dict[str, Any]]:
    """Whole answers (not cut short, not failed) newest first: the one with this ``fingerprint``,
    or those whose last user message is ``prompt`` (at most 50). Replay reads these."""
    con = connect(where)
    if con is None:
        return []
    try:
        if fingerprint is not None:
            query = f"SELECT * FROM answers WHERE fingerprint = ? AND {_WHOLE} ORDER BY id DESC LIMIT 1"
            args: list[Any] = [fingerprint]
        else:
            query = f"SELECT * FROM answers WHERE prompt IS ? AND {_WHOLE} ORDER BY id DESC LIMIT 50"
            args = [prompt]
        return [dict(r) for r in con.execute(query, args)]
    finally:
        con.close()


def count(where: Path) -> int:
    con = connect(where)
    if con is None:
        return 0
    try:
        return int(con.execute("SELECT count(*) FROM answers").fetchone()[0])
    finally:
        con.close()


def delete(
    where: Path,
    *,
    q: str | None = None,
    model: str | None = None,
    since: float | None = None,
    ids: Iterable[int] | None = None,
) -> int:
    """Delete the rows that match (every row when nothing is given); how many went."""
    con = connect(where)
    if con is None:
        return 0
    try:
        source, sql, args = _where(q, model, since, list(ids) if ids is not None else None)
        con.execute("BEGIN IMMEDIATE")
        gone = con.execute(f"DELETE FROM answers WHERE id IN (SELECT a.id FROM {source}{sql})", args).rowcount
        con.execute("COMMIT")
        return int(gone)
    finally:
        con.close()
