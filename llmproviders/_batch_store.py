"""The batch store: a SQLite file that keeps a batch job's results, so a run can resume.

One row per finished item, keyed by the item's ``id`` (or a hash of its request; see
:func:`llmproviders.batch`), with its status (``done`` or ``failed``), text, error (as
JSON, see :func:`~llmproviders._batch_result.error_to_dict`), usage and timings. Each row
is committed on its own as the item finishes, so a crash or ``kill -9`` loses at most
the items in flight. The file is in WAL mode: other processes (a notebook watching the
job) can read it while the job writes, and see every finished item.

``synchronous=NORMAL``: a commit survives the process dying at any point; a power cut
may lose the last few commits (their items are simply sent again on the next run).

Only the process that runs the batch writes the store, whatever executor runs the
requests. The schema, for readers using ``sqlite3`` directly::

    items(key TEXT PRIMARY KEY, idx INTEGER, id TEXT (JSON), status TEXT ('done'|'failed'),
          text TEXT, error TEXT (JSON), usage TEXT (JSON), finish_reason TEXT,
          attempts INTEGER, seconds REAL, started_at REAL, finished_at REAL (Unix time),
          provider TEXT, model TEXT, run INTEGER)
    runs(run INTEGER PRIMARY KEY, started_at REAL, finished_at REAL, status TEXT
         ('running'|'complete'|'interrupted'|'failed'), total INTEGER, provider TEXT, model TEXT)

Example usage::

    with BatchStore("results.db") as store:
        print(store.counts())            # {'total': 1000, 'done': 420, 'failed': 3}
        store.export("out.jsonl")        # one JSON line per item, ItemResult.to_dict()
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from types import TracebackType
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional, Tuple, Type, Union

from ._batch_result import ItemResult, error_from_dict, error_to_dict, usage_from_dict, usage_to_dict
from ._exceptions import InvalidArgumentError, LLMProvidersError

__all__ = ["BatchStore"]

SCHEMA_VERSION = 1
_BUSY_TIMEOUT = 30.0  # seconds a write waits for a reader's or another writer's lock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY,
    idx INTEGER NOT NULL,
    id TEXT,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    text TEXT,
    error TEXT,
    usage TEXT,
    finish_reason TEXT,
    attempts INTEGER NOT NULL,
    seconds REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    provider TEXT,
    model TEXT,
    run INTEGER
);
CREATE INDEX IF NOT EXISTS items_by_idx ON items (idx);
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,
    total INTEGER NOT NULL,
    provider TEXT,
    model TEXT
);
"""
_COLUMNS = "key, idx, id, status, text, error, usage, finish_reason, attempts, seconds"

PathArg = Union[str, "os.PathLike[str]"]


class BatchStore:
    """A batch job's results in a SQLite file (created if missing), readable while the
    job runs. Pass it, or its path, as ``batch(store=...)``; read it with
    :meth:`results`, :meth:`get`, :meth:`counts`; write it out with :meth:`export`.
    Close it (or use ``with``) when done. Safe to use from several threads."""

    def __init__(self, path: PathArg) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._db: Optional[sqlite3.Connection] = None
        try:
            self._db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
            self._setup()
        except sqlite3.Error as exc:
            self.close()
            raise InvalidArgumentError(f"cannot use {self.path!r} as a batch store: {exc}") from None

    def _setup(self) -> None:
        db = self._connection()
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            (version,) = db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if int(version) > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"it was made by a newer llmproviders (schema {version}); upgrade llmproviders")

    # -- reading ---------------------------------------------------------------------

    def results(self) -> List[ItemResult]:
        """Every item in the store, by index (then key)."""
        rows = self._query(f"SELECT {_COLUMNS} FROM items ORDER BY idx, key")
        return [_from_row(row, from_store=True) for row in rows]

    def __iter__(self) -> Iterator[ItemResult]:
        return iter(self.results())

    def __len__(self) -> int:
        return int(self._query("SELECT count(*) FROM items")[0][0])

    def get(self, key: str) -> Optional[ItemResult]:
        """The item stored under ``key`` (its ``id`` as a string, or its hash), or None."""
        rows = self._query(f"SELECT {_COLUMNS} FROM items WHERE key = ?", (str(key),))
        return _from_row(rows[0], from_store=True) if rows else None

    def counts(self) -> Dict[str, Optional[int]]:
        """``done`` and ``failed`` items in the store, and ``total``: how many items the
        latest run has (None before any run). A notebook can poll this while a job runs."""
        statuses = dict(self._query("SELECT status, count(*) FROM items GROUP BY status"))
        latest = self._query("SELECT total FROM runs ORDER BY run DESC LIMIT 1")
        return {
            "total": int(latest[0][0]) if latest else None,
            "done": int(statuses.get("done", 0)),
            "failed": int(statuses.get("failed", 0)),
        }

    def export(self, out: Union[PathArg, IO[str]]) -> int:
        """Write one JSON line per item (:meth:`ItemResult.to_dict`), in index order, to
        the file at ``out`` (replaced) or to an open text file. Returns the line count."""
        items = self.results()
        if isinstance(out, (str, os.PathLike)):
            with open(os.fspath(out), "w", encoding="utf-8", newline="\n") as file:
                return _write_lines(file, items)
        return _write_lines(out, items)

    # -- writing (the batch) ---------------------------------------------------------

    def finished(self, keys: Iterable[str]) -> Dict[str, ItemResult]:
        """The stored items among ``keys``, by key."""
        wanted = list(keys)
        found: Dict[str, ItemResult] = {}
        for start in range(0, len(wanted), 500):  # SQLite's limit on ? parameters
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._query(f"SELECT {_COLUMNS} FROM items WHERE key IN ({marks})", chunk):
                found[row[0]] = _from_row(row, from_store=True)
        return found

    def begin_run(self, total: int, provider: str, model: Optional[str]) -> int:
        """Record that a run of ``total`` items starts; returns its number."""
        cursor = self._execute(
            "INSERT INTO runs (started_at, status, total, provider, model) VALUES (?, 'running', ?, ?, ?)",
            (time.time(), total, provider, model),
        )
        return int(cursor.lastrowid or 0)

    def end_run(self, run: int, status: str) -> None:
        self._execute("UPDATE runs SET finished_at = ?, status = ? WHERE run = ?", (time.time(), status, run))

    def record(self, item: ItemResult, *, run: int, started_at: float, provider: str, model: Optional[str]) -> None:
        """Commit one finished item (replacing an earlier row with its key)."""
        self._execute(
            "INSERT OR REPLACE INTO items (key, idx, id, status, text, error, usage, finish_reason, attempts, seconds,"
            " started_at, finished_at, provider, model, run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item.key,
                item.index,
                json.dumps(item.id, ensure_ascii=False) if item.id is not None else None,
                "done" if item.ok else "failed",
                item.text,
                _json(error_to_dict(item.error)) if item.error is not None else None,
                _json(usage_to_dict(item.usage)) if item.usage is not None else None,
                item.finish_reason,
                item.attempts,
                item.seconds,
                started_at,
                time.time(),
                provider,
                model,
                run,
            ),
        )

    # -- life cycle ------------------------------------------------------------------

    def close(self) -> None:
        """Close the file. Safe to call more than once."""
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            db.close()

    @property
    def closed(self) -> bool:
        return self._db is None

    def __enter__(self) -> "BatchStore":
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BatchStore {self.path!r}{' closed' if self.closed else ''}>"

    # -- internals -------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise InvalidArgumentError(f"the batch store {self.path!r} is closed")
        return self._db

    def _query(self, sql: str, parameters: Iterable[Any] = ()) -> List[Tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connection().execute(sql, tuple(parameters)).fetchall()
            except sqlite3.Error as exc:
                raise _store_error(self.path, "read", exc) from None

    def _execute(self, sql: str, parameters: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._connection().execute(sql, tuple(parameters))
            except sqlite3.Error as exc:
                raise _store_error(self.path, "write", exc) from None


def _store_error(path: str, action: str, exc: sqlite3.Error) -> LLMProvidersError:
    return LLMProvidersError(f"could not {action} the batch store {path!r}: {exc}")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _from_row(row: Tuple[Any, ...], *, from_store: bool) -> ItemResult:
    key, idx, item_id, status, text, error, usage, finish_reason, attempts, seconds = row
    ok = status == "done"
    return ItemResult(
        index=int(idx),
        id=_loads(item_id),
        key=key,
        ok=ok,
        text=text if ok else None,
        error=None if ok else error_from_dict(_loads(error) or {}),
        usage=usage_from_dict(_loads(usage)),
        finish_reason=finish_reason,
        attempts=int(attempts),
        seconds=float(seconds),
        from_store=from_store,
    )


def _loads(text: Optional[str]) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _write_lines(file: IO[str], items: List[ItemResult]) -> int:
    for item in items:
        file.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
    return len(items)
