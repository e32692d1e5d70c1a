"""The emulator's Files and Batches endpoints: DashScope's Batch API in OpenAI's shapes (reference §11).

A batch runs in a worker thread: ``validating`` (the whole file is checked: JSON lines, one model
that supports batch, unique ``custom_id``, the chat URL and POST, the line, file and size limits;
a file that breaks one fails with the service's ``errors`` list) → ``in_progress`` (each line's
body answered by the emulator's own non-streaming chat path) → ``finalizing`` → ``completed``;
``cancelling`` → ``cancelled`` and ``expired`` keep what was answered. A line the chat refuses goes
to the error file; lines never answered (cancelled, expired) go there too, so every ``custom_id``
comes back once. Files live on disk, uploads and downloads are streamed: a 50,000-line file never
sits in memory. Usage is billed at half the live price in the emulator's ledger.

Speed, for tests: ``emulator.batches.speed`` (lines a second, None: as fast as it can),
``emulator.batches.pause`` (seconds spent validating and finalizing) and ``emulator.batches.hour``
(seconds an hour of the completion window lasts, so a window can pass during a test). Faults are
the emulator's ``Fault`` kinds ``batch_fail``, ``batch_expire`` (after ``after`` lines) and
``line_error``.
"""

from __future__ import annotations

import itertools
import json
import mmap
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BufferedIOBase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..models import batch_models, get_model
from .protocol import ProtocolError, error_body, new_request_id

if TYPE_CHECKING:
    from .server import Emulator, _Handler

__all__ = ["BatchService", "Limits"]

ENDPOINT = "/v1/chat/completions"
WINDOWS = range(24, 337)  # completion_window: 24h to 336h (14 days)
CHUNK = 1 << 16


@dataclass
class Limits:
    """The service's limits on one input file."""

    lines: int = 50_000
    bytes: int = 500 * 1024 * 1024
    line_bytes: int = 6 * 1024 * 1024


@dataclass
class _File:
    id: str
    path: Path
    offset: int
    size: int
    filename: str
    purpose: str
    created_at: int = field(default_factory=lambda: int(time.time()))

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.size,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }

    def lines(self) -> Iterator[bytes]:
        """The file's lines, read from disk a line at a time."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            left = self.size
            while left > 0:
                line = f.readline(left)
                if not line:
                    return
                left -= len(line)
                yield line


@dataclass
class _Batch:
    id: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, Any] | None
    created_at: int = field(default_factory=lambda: int(time.time()))
    status: str = "validating"
    times: dict[str, int] = field(default_factory=dict)
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    model: str | None = None
    usage: dict[str, int] = field(
        default_factory=lambda: {"input_tokens": 0, "output_tokens": 0, "reasoning_tokens": 0}
    )
    cancel: threading.Event = field(default_factory=threading.Event)
    seq: int = field(default_factory=itertools.count().__next__)  # creation order, for listing

    deadline: float = 0.0  # when the window closes (unix time; the service's hour may be scaled)

    @property
    def expires_at(self) -> int:
        return int(self.deadline)

    def body(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": ENDPOINT,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": self.times.get("in_progress"),
            "expires_at": self.expires_at,
            "finalizing_at": self.times.get("finalizing"),
            "completed_at": self.times.get("completed"),
            "failed_at": self.times.get("failed"),
            "expired_at": self.times.get("expired"),
            "cancelling_at": self.times.get("cancelling"),
            "cancelled_at": self.times.get("cancelled"),
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
            "metadata": self.metadata,
            "model": self.model,
            "usage": {
                "input_tokens": usage["input_tokens"],
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": usage["output_tokens"],
                "output_tokens_details": {"reasoning_tokens": usage["reasoning_tokens"]},
                "total_tokens": usage["input_tokens"] + usage["output_tokens"],
            },
        }


def _not_found(what: str, ident: str) -> ProtocolError:
    return ProtocolError(404, "NotFound", f"The {what} `{ident}` does not exist.", "invalid_request_error")


def _bad(message: str, code: str = "invalid_parameter_error") -> ProtocolError:
    return ProtocolError(400, code, message)


class BatchService:
    """The files and batches of one emulator, and the threads that run them."""

    def __init__(self, emulator: Emulator, *, speed: float | None = None, pause: float = 0.0) -> None:
        self.emulator = emulator
        self.speed = speed  # lines a second; None: as fast as the chat path answers
        self.pause = pause  # seconds spent in validating and in finalizing
        self.hour = 3600.0  # seconds one hour of a completion window lasts (small: windows pass in tests)
        self.limits = Limits()
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        self._dir: Path | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def dir(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="qwen-emulator-files-"))
        return self._dir

    def close(self) -> None:
        for batch in list(self.batches.values()):
            batch.cancel.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def reset(self) -> None:
        self.close()
        with self._lock:
            self.files.clear()
            self.batches.clear()
            self._threads.clear()

    # -- endpoints (called from handler threads) ------------------------------------------------
    def handle(self, handler: _Handler, method: str, route: str, query: dict[str, str]) -> None:
        """Answer one Files or Batches request; ``route`` is the path after the base URL."""
        parts = route.strip("/").split("/")
        request_id = new_request_id()
        try:
            status, payload = self._dispatch(handler, method, parts, query, request_id)
        except ProtocolError as err:
            handler.close_connection = True  # the body may be unread: the next request must not start in it
            handler._json(err.status, error_body(err, request_id), request_id)
            return
        if isinstance(payload, _File):
            handler._file(payload.path, payload.offset, payload.size, request_id)
        else:
            handler._json(status, payload, request_id)

    def _dispatch(
        self, handler: _Handler, method: str, parts: list[str], query: dict[str, str], request_id: str
    ) -> tuple[int, Any]:
        kind, rest = parts[0], parts[1:]
        if kind == "files" and method == "POST" and not rest:
            return 200, self._upload(handler).body()
        if kind == "files" and len(rest) == 1 and method in ("GET", "DELETE"):
            file = self._file(rest[0])
            if method == "GET":
                return 200, file.body()
            with self._lock:
                self.files.pop(file.id, None)
            return 200, {"id": file.id, "object": "file", "deleted": True}
        if kind == "files" and len(rest) == 2 and rest[1] == "content" and method == "GET":
            return 200, self._file(rest[0])
        if kind == "batches" and method == "POST" and not rest:
            return 200, self._create(handler.json_body())
        if kind == "batches" and method == "GET" and not rest:
            return 200, self._list(query)
        if kind == "batches" and len(rest) == 1 and method == "GET":
            return 200, self._batch(rest[0]).body()
        if kind == "batches" and len(rest) == 2 and rest[1] == "cancel" and method == "POST":
            handler.json_body()
            return 200, self._cancel(self._batch(rest[0]))
        raise ProtocolError(404, "NotFound", f"{method} /{'/'.join(parts)} is not a known endpoint.")

    def _file(self, file_id: str) -> _File:
        with self._lock:
            file = self.files.get(file_id)
        if file is None:
            raise _not_found("file", file_id)
        return file

    def _batch(self, batch_id: str) -> _Batch:
        with self._lock:
            batch = self.batches.get(batch_id)
        if batch is None:
            raise _not_found("batch", batch_id)
        return batch

    def _upload(self, handler: _Handler) -> _File:
        """Spool the multipart body to disk as it arrives, then find the file part in place."""
        boundary = _boundary(handler.headers.get("content-type", ""))
        if boundary is None:
            raise _bad("The request must be multipart/form-data with a file and purpose=batch.")
        spool = self.dir / f"upload-{uuid.uuid4().hex}"
        with open(spool, "wb") as out:
            for chunk in handler.body_chunks():
                out.write(chunk)
        fields, found = _multipart(spool, boundary)
        if found is None:
            spool.unlink()
            raise _bad("No file was uploaded: send the JSON lines as the multipart field `file`.")
        if fields.get("purpose") != "batch":
            spool.unlink()
            raise _bad("The purpose must be `batch`.")
        name, offset, size = found
        file = _File(f"file-batch-{uuid.uuid4().hex[:24]}", spool, offset, size, name, "batch")
        with self._lock:
            self.files[file.id] = file
        return file

    def _create(self, data: Any) -> dict[str, Any]:
        """The new batch as it is created (``validating``), before its worker may move it on."""
        if not isinstance(data, dict):
            raise _bad("Required body invalid, please check the request body format.")
        file_id = data.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            raise _bad("input_file_id is required.")
        file = self._file(file_id)
        if data.get("endpoint") != ENDPOINT:
            raise _bad(f"endpoint must be `{ENDPOINT}`.")
        window = data.get("completion_window", "24h")
        if (
            not (isinstance(window, str) and window.endswith("h") and window[:-1].isdigit())
            or int(window[:-1]) not in WINDOWS
        ):
            raise _bad("completion_window must be between 24h and 336h, in hours (`24h`).")
        metadata = data.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise _bad("metadata must be an object of strings.")
        batch = _Batch(f"batch_{uuid.uuid4()}", file_id, window, metadata)
        batch.deadline = time.time() + int(window[:-1]) * self.hour
        thread = threading.Thread(
            target=self._run, args=(batch, file), name=f"emulator-{batch.id}", daemon=True
        )
        created = batch.body()
        with self._lock:
            self.batches[batch.id] = batch
            self._threads.append(thread)
        thread.start()
        return created

    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        try:
            limit = max(1, min(100, int(query.get("limit", "20"))))
        except ValueError:
            raise _bad("limit must be a whole number from 1 to 100.") from None
        with self._lock:
            newest = sorted(self.batches.values(), key=lambda b: b.seq, reverse=True)
        ids = [b.id for b in newest]
        after = query.get("after")
        start = ids.index(after) + 1 if after in ids else 0
        page = newest[start : start + limit]
        return {
            "object": "list",
            "data": [b.body() for b in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": start + limit < len(newest),
        }

    def _cancel(self, batch: _Batch) -> dict[str, Any]:
        with self._lock:
            if batch.status in ("validating", "in_progress", "finalizing"):
                batch.status = "cancelling"
                batch.times["cancelling"] = int(time.time())
                batch.cancel.set()
            return batch.body()

    # -- the worker -----------------------------------------------------------------------------
    def _set(self, batch: _Batch, status: str) -> None:
        with self._lock:
            if batch.status == "cancelling" and status not in ("completed", "failed", "expired", "cancelled"):
                return  # a cancel that came while finalizing ends as what the batch became
            batch.status = status
            batch.times[status] = int(time.time())

    def _wait(self, batch: _Batch, seconds: float) -> bool:
        """Sleep, unless cancelled (True) or the emulator stops."""
        return batch.cancel.wait(seconds) if seconds > 0 else batch.cancel.is_set()

    def _run(self, batch: _Batch, file: _File) -> None:
        """The batch's worker: a failure of ours ends the batch ``failed`` rather than leaving it
        ``validating`` for ever (the input file itself was found at create)."""
        try:
            self._work(batch, file)
        except Exception as exc:  # reported on the batch, as the service would
            with self._lock:
                batch.errors = [{"param": None, "line": None, "code": "internal_error", "message": str(exc)}]
            self._set(batch, "failed")

    def _work(self, batch: _Batch, file: _File) -> None:
        emu = self.emulator
        fault = emu._draw_batch_fault(("batch_fail", "batch_expire"))
        self._wait(batch, self.pause)
        errors, total, model = self._validate(file)
        batch.total, batch.model = total, model
        if fault is not None and fault.kind == "batch_fail":
            errors = [
                {"code": fault.code or "invalid_file", "message": fault.message or "The file is invalid."}
            ]
        if errors:
            with self._lock:
                batch.errors = [{"param": None, "line": None, **e} for e in errors]
            self._set(batch, "failed")
            return
        if batch.cancel.is_set():
            self._finish(batch, file, 0, None, None, "cancelled")
            return
        self._set(batch, "in_progress")
        expire_after = fault.after if fault is not None and fault.kind == "batch_expire" else None
        out_path, err_path = self.dir / f"{batch.id}.output", self.dir / f"{batch.id}.error"
        done = 0
        started = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            for line in file.lines():
                if not line.strip():
                    continue
                if batch.cancel.is_set() or time.time() > batch.deadline:
                    break
                if expire_after is not None and done >= expire_after:
                    break
                if self.speed:
                    ahead = done / self.speed - (time.monotonic() - started)
                    if ahead > 0 and self._wait(batch, ahead):
                        break
                ok, text = self._answer(batch, json.loads(line))
                (out if ok else err).write(text)
                with self._lock:
                    if ok:
                        batch.completed += 1
                    else:
                        batch.failed += 1
                done += 1
        ending = "cancelled" if batch.cancel.is_set() else "completed"
        if ending == "completed" and done < total:
            ending = "expired"
        self._finish(batch, file, done, out_path, err_path, ending)

    def _finish(
        self, batch: _Batch, file: _File, done: int, out_path: Path | None, err_path: Path | None, ending: str
    ) -> None:
        """Write what was never answered to the error file, publish both files, end the batch."""
        if ending == "completed":
            self._set(batch, "finalizing")
            self._wait(batch, self.pause)
        out_path = out_path or self.dir / f"{batch.id}.output"
        err_path = err_path or self.dir / f"{batch.id}.error"
        if ending != "completed":
            code = {"cancelled": "batch_cancelled", "expired": "batch_expired"}[ending]
            message = {
                "cancelled": "The batch was cancelled before this request ran.",
                "expired": "The batch expired before this request ran.",
            }[ending]
            with open(err_path, "ab") as err:
                lines = (line for line in file.lines() if line.strip())
                for i, line in enumerate(lines):
                    if i < done:
                        continue
                    custom_id = json.loads(line).get("custom_id")
                    err.write(_line(custom_id, None, {"code": code, "message": message}))
                    with self._lock:
                        batch.failed += 1
        usage = batch.usage
        if batch.model is not None and usage["input_tokens"] + usage["output_tokens"]:
            self.emulator._charge(
                batch.model,
                usage["input_tokens"],
                usage["output_tokens"],
                usage["reasoning_tokens"],
                batch=True,
            )
        for path, attr in ((out_path, "output_file_id"), (err_path, "error_file_id")):
            path.touch()
            size = path.stat().st_size
            if size:
                purpose = "batch_output" if attr == "output_file_id" else "batch_error"
                out = _File(f"file-{purpose}-{uuid.uuid4().hex[:24]}", path, 0, size, path.name, purpose)
                with self._lock:
                    self.files[out.id] = out
                    setattr(batch, attr, out.id)
        self._set(batch, ending)

    def _validate(self, file: _File) -> tuple[list[dict[str, Any]], int, str | None]:
        """The file's first faults in the service's ``errors`` shape, its line count and its model."""
        limits = self.limits
        if file.size > limits.bytes:
            mb = limits.bytes // (1024 * 1024)
            return [{"code": "file_too_large", "message": f"The file is larger than {mb} MB."}], 0, None
        seen: set[str] = set()
        models: set[str] = set()
        total = 0
        for number, raw in enumerate(file.lines(), 1):
            if not raw.strip():
                continue
            total += 1

            def fault(code: str, message: str, n: int = number) -> list[dict[str, Any]]:
                return [{"code": code, "message": message, "line": n}]

            if len(raw) > limits.line_bytes:
                mb = limits.line_bytes // (1024 * 1024)
                return fault("line_too_large", f"Line {number} is larger than {mb} MB."), total, None
            try:
                line = json.loads(raw)
            except ValueError:
                return fault("invalid_json_line", f"Line {number} is not valid JSON."), total, None
            if not isinstance(line, dict):
                return fault("invalid_json_line", f"Line {number} is not a JSON object."), total, None
            custom_id = line.get("custom_id")
            if not isinstance(custom_id, str) or not custom_id:
                return fault("missing_custom_id", f"Line {number} has no custom_id string."), total, None
            if custom_id in seen:
                return fault("duplicate_custom_id", f"The custom_id {custom_id!r} is repeated."), total, None
            seen.add(custom_id)
            if line.get("method") != "POST" or line.get("url") != ENDPOINT:
                message = f"Line {number}: method must be POST and url `{ENDPOINT}`."
                return fault("invalid_url", message), total, None
            body = line.get("body")
            if isinstance(body, dict) and isinstance(body.get("model"), str):
                models.add(body["model"])
            if len(models) > 1:
                message = f"A file takes one model; it names {', '.join(sorted(models))}."
                return fault("mixed_models", message), total, None
        if total == 0:
            return [{"code": "empty_file", "message": "The file has no requests."}], 0, None
        if total > limits.lines:
            message = f"The file has {total:,} requests; a batch takes at most {limits.lines:,}."
            return [{"code": "too_many_requests", "message": message}], total, None
        model = next(iter(models), None)
        info = get_model(model) if model else None
        if info is not None and not info.batch:
            names = ", ".join(batch_models())
            message = f"The model `{model}` does not support batch inference; use one of {names}."
            return [{"code": "model_not_supported", "message": message}], total, model
        return [], total, model

    def _answer(self, batch: _Batch, line: dict[str, Any]) -> tuple[bool, bytes]:
        """One line through the emulator's own chat path: (answered, the output or error line)."""
        emu = self.emulator
        custom_id = line["custom_id"]
        request_id = new_request_id()
        fault = emu._draw_batch_fault(("line_error",))
        body = line.get("body")
        if fault is not None:
            failure: ProtocolError | None = fault.error()
        elif isinstance(body, dict) and body.get("stream"):
            failure = _bad("Batch requests do not stream: remove `stream`.")
        else:
            failure = None
        if failure is None:
            refusal = emu.refusal(body)
            if isinstance(refusal, ProtocolError):
                failure = refusal
            elif refusal is not None:
                failure = ProtocolError(422, "invalid_parameter_error", json.dumps(refusal))
        if failure is not None:
            response = {
                "status_code": failure.status,
                "request_id": request_id,
                "body": error_body(failure, request_id),
            }
            error = {"code": failure.code or "invalid_request_error", "message": failure.message}
            return False, _line(custom_id, response, error)
        assert isinstance(body, dict)  # refusal() passed it
        completion = emu.complete(body)
        completion.request_id = request_id
        usage = completion.usage()
        with self._lock:
            batch.usage["input_tokens"] += usage["prompt_tokens"]
            batch.usage["output_tokens"] += usage["completion_tokens"]
            details = usage.get("completion_tokens_details") or {}
            batch.usage["reasoning_tokens"] += details.get("reasoning_tokens", 0)
        response = {"status_code": 200, "request_id": request_id, "body": completion.body()}
        return True, _line(custom_id, response, None)


def _line(custom_id: Any, response: dict[str, Any] | None, error: dict[str, Any] | None) -> bytes:
    line = {
        "id": f"batch_req_{uuid.uuid4().hex[:24]}",
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }
    return json.dumps(line, ensure_ascii=False).encode() + b"\n"


def _boundary(content_type: str) -> bytes | None:
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for param in rest.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"').encode()
    return None


def _multipart(path: Path, boundary: bytes) -> tuple[dict[str, str], tuple[str, int, int] | None]:
    """The small fields of a multipart body on disk, and where its file part lies (name, offset, size)."""
    fields: dict[str, str] = {}
    found: tuple[str, int, int] | None = None
    if path.stat().st_size == 0:
        return fields, None
    delimiter = b"--" + boundary
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        pos = mm.find(delimiter)
        while pos >= 0:
            pos += len(delimiter)
            if mm[pos : pos + 2] == b"--":
                break
            head_end = mm.find(b"\r\n\r\n", pos)
            if head_end < 0:
                break
            headers = mm[pos:head_end].decode("utf-8", errors="replace")
            start = head_end + 4
            end = mm.find(b"\r\n" + delimiter, start)
            if end < 0:
                break
            name, filename = _disposition(headers)
            if filename is not None and name == "file":
                found = (filename, start, end - start)
            elif name is not None and end - start < 4096:
                fields[name] = mm[start:end].decode("utf-8", errors="replace")
            pos = end + 2
    return fields, found


def _disposition(headers: str) -> tuple[str | None, str | None]:
    name = filename = None
    for header in headers.split("\r\n"):
        key, _, value = header.partition(":")
        if key.strip().lower() != "content-disposition":
            continue
        for param in value.split(";"):
            k, _, v = param.strip().partition("=")
            if k == "name":
                name = v.strip('"')
            elif k == "filename":
                filename = v.strip('"')
    return name, filename


def read_body_chunks(rfile: BufferedIOBase, headers: Any) -> Iterator[bytes]:
    """A request body in pieces, by content-length or chunked transfer encoding."""
    if "chunked" in (headers.get("transfer-encoding") or "").lower():
        while True:
            size = int(rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return
            left = size
            while left:
                piece = rfile.read(min(left, CHUNK))
                if not piece:
                    return
                left -= len(piece)
                yield piece
            rfile.readline()
    left = int(headers.get("content-length") or 0)
    while left > 0:
        piece = rfile.read(min(left, CHUNK))
        if not piece:
            return
        left -= len(piece)
        yield piece


def send_file(wfile: BufferedIOBase, path: Path, offset: int, size: int) -> None:
    with open(path, "rb") as f:
        f.seek(offset)
        left = size
        while left > 0:
            piece = f.read(min(left, CHUNK))
            if not piece:
                return
            wfile.write(piece)
            left -= len(piece)
