"""A batch job: one or more batches on the service (one per input file), kept in the store so it
outlives the kernel that sent it.

``Batch.submit`` uploads each input file and creates its batch; ``status`` asks the service how far
the parts are; ``wait`` watches them with a progress display; ``result`` downloads the output and
error files into the job's folder and hands the job to its kind's finisher, which turns the lines
back into what the live call returns. Ctrl-C while waiting stops the waiting, never the job.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import config, simulator
from ..api.batches import BatchWire
from ..api.render import format_cost
from ..errors import APIConnectionError, ConfigError, NotFoundError, ParameterError
from ..models import BATCH_DISCOUNT, estimate_cost
from . import store

__all__ = ["FINISHERS", "TERMINAL", "Batch", "Part", "Status", "finisher"]

TERMINAL = ("completed", "failed", "expired", "cancelled")
RUNNING = ("validating", "in_progress", "finalizing", "cancelling")  # from least to most advanced
WORST = ("failed", "expired", "cancelled", "completed")  # which end a job of mixed parts shows
POLL_FIRST, POLL_MOST = 0.25, 30.0  # seconds between looks: quick at first, then kind to the service

# a kind's finisher module: finish(job), failed(job), retry_failed(job, *, batch)
FINISHERS = {
    "requests": "qwen_magics.jobs.requests",
    "apply": "qwen_magics.structured.batch",
    "compare": "qwen_magics.comparison.batch",
}


def finisher(kind: str) -> Any:
    """The module that finishes jobs of ``kind`` (imported when needed, so layers stay one-way)."""
    if kind not in FINISHERS:
        raise ValueError(f"unknown batch kind {kind!r}; the kinds are {', '.join(FINISHERS)}")
    return importlib.import_module(FINISHERS[kind])


@dataclass
class Part:
    """One input file and its batch on the service."""

    file_id: str
    batch_id: str
    model: str
    count: int
    input_path: Path | None = None
    output_path: Path | None = None
    error_path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)  # the service's last batch object

    @property
    def state(self) -> str:
        return str(self.info.get("status") or "validating")

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def counts(self) -> tuple[int, int, int]:
        """(completed, failed, total) as the service last said."""
        c = self.info.get("request_counts") or {}
        return int(c.get("completed") or 0), int(c.get("failed") or 0), int(c.get("total") or self.count)

    @property
    def cost(self) -> float | None:
        """Half the live price of the tokens the service reports for this batch (None: not reported,
        or the batch is still running)."""
        usage = self.info.get("usage") or {}
        if not self.done:
            return None
        tokens_in, tokens_out = usage.get("input_tokens"), usage.get("output_tokens")
        if not isinstance(tokens_in, int) or not isinstance(tokens_out, int):
            return None
        reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0
        live = estimate_cost(self.model, tokens_in, tokens_out, reasoning)
        return None if live is None else live * BATCH_DISCOUNT

    @property
    def why(self) -> str | None:
        """The service's reason when the batch failed validation."""
        data = (self.info.get("errors") or {}).get("data") or []
        return "; ".join(str(e.get("message") or e.get("code")) for e in data if isinstance(e, dict)) or None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("input_path", "output_path", "error_path"):
            out[name] = None if out[name] is None else str(out[name])
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Part:
        def path(key: str) -> Path | None:
            return Path(data[key]) if data.get(key) else None

        return cls(
            str(data["file_id"]),
            str(data["batch_id"]),
            str(data["model"]),
            int(data["count"]),
            path("input_path"),
            path("output_path"),
            path("error_path"),
            info=data.get("info") or {},
        )


@dataclass
class Status:
    """Where a job is: its parts' states summed up."""

    state: str  # the least advanced running state, or when all ended the worst end
    completed: int
    failed: int
    total: int
    elapsed: float  # seconds since it was submitted (to its end, in whole seconds, once it ended)
    parts: list[str]  # each part's state
    cost: float | None = None  # USD at the batch price, once the service reports the tokens
    estimate: float | None = None  # USD estimated before sending
    errors: list[str] = field(default_factory=list)  # why parts failed

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    def __str__(self) -> str:
        words = [self.state.replace("_", " "), f"{self.completed:,}/{self.total:,} done"]
        if self.failed:
            words.append(f"{self.failed:,} failed")
        if len(self.parts) > 1:
            words.append(f"{len(self.parts)} batches")
        words.append("under 1s" if self.done and self.elapsed < 1 else _duration(self.elapsed))
        if self.cost is not None:
            words.append(format_cost(self.cost))
        elif self.estimate is not None:
            words.append(f"estimate {format_cost(self.estimate)}")
        return " · ".join(words)


class Batch:
    """A job on the Batch API. ``job.status()``, ``job.wait()``, ``job.result()``, ``job.cancel()``;
    ``Batch.resume(id)`` in another kernel. ``id`` is the first part's batch id."""

    def __init__(
        self,
        id: str,
        kind: str,
        parts: list[Part],
        dir: Path,
        state: dict[str, Any],
        *,
        created: float | None = None,
        completion_window: str = "24h",
        metadata: dict[str, Any] | None = None,
        estimate: float | None = None,
        base_url: str | None = None,
        settings: config.Settings | None = None,
        offline: bool = False,
    ) -> None:
        self.id = id
        self.kind = kind
        self.parts = parts
        self.dir = dir
        self.state = state
        self.created = time.time() if created is None else created
        self.completion_window = completion_window
        self.metadata = metadata
        self.estimate = estimate
        self.base_url = base_url
        self.offline = offline  # sent to the offline simulator, which lives only as long as its process
        self._settings = settings
        self.interrupted = False  # the last wait was stopped with Ctrl-C
        self.progress = True  # result(progress=False): the finisher prints no summary either

    def __repr__(self) -> str:
        total = sum(p.count for p in self.parts)
        parts = f"{len(self.parts)} batches, " if len(self.parts) > 1 else ""
        return f"<Batch {self.id} {self.kind}: {parts}{total:,} requests>"

    # -- making and finding jobs ----------------------------------------------------------------
    @classmethod
    def submit(
        cls,
        inputs: list[tuple[Path, str, int]],
        *,
        kind: str,
        state: dict[str, Any],
        completion_window: str = "24h",
        metadata: dict[str, Any] | None = None,
        estimate: float | None = None,
        settings: config.Settings | None = None,
        workdir: Path | None = None,
    ) -> Batch:
        """Upload each ``(JSON lines file, model, line count)`` and create its batch; the job is
        saved after each part, so one that fails halfway still lists the batches it made. The
        inputs (and ``workdir``, a folder from ``store.new_workdir()`` with the kind's own files)
        move into the job's folder."""
        finisher(kind)  # an unknown kind is refused before anything is sent
        try:  # the job is saved after its first batch is made: a state that cannot be is refused now
            json.dumps(state)
        except (TypeError, ValueError) as exc:
            raise ParameterError(
                "batch", f"the job's settings cannot be saved with it ({exc}); pass plain values instead"
            ) from None
        if not inputs:
            raise ValueError("a batch job needs at least one input file")
        settings = settings or config.settings()
        job: Batch | None = None
        with BatchWire(settings) as wire:
            for i, (given, model, count) in enumerate(inputs):
                path = Path(given) if job is None else _moved(Path(given), job.dir, workdir)
                uploaded = wire.upload(path)
                tags = {**(metadata or {}), "qwen_magics": kind, "part": f"{i + 1}/{len(inputs)}"}
                created = wire.create(uploaded["id"], completion_window=completion_window, metadata=tags)
                part = Part(uploaded["id"], created["id"], model, count, path, info=created)
                if job is None:
                    folder = _claim(store.job_dir(created["id"]), workdir)
                    path = _moved(path, folder, workdir)
                    job = cls(
                        created["id"],
                        kind,
                        [],
                        folder,
                        state,
                        completion_window=completion_window,
                        metadata=metadata,
                        estimate=estimate,
                        base_url=settings.base_url,
                        settings=settings,
                        offline=settings.offline,
                    )
                part.input_path = _move_into(path, job.dir)
                job.parts.append(part)
                job.save()
        assert job is not None
        return job

    @classmethod
    def resume(cls, batch_id: str | Path) -> Batch:
        """The job with this id (or with a part of this batch id, or in this folder) from the store;
        a batch the store does not know is fetched from the service and kept as a job of kind
        ``requests``."""
        if isinstance(batch_id, Path):
            return cls.load(batch_id)
        folder = store.find(batch_id)
        if folder is not None:
            return cls.load(folder)
        settings = config.settings()
        with BatchWire(settings) as wire:
            info = wire.retrieve(batch_id)
        model = str(info.get("model") or (info.get("metadata") or {}).get("model") or "")
        total = int((info.get("request_counts") or {}).get("total") or 0)
        part = Part(str(info.get("input_file_id") or ""), batch_id, model, total, info=info)
        folder = store.job_dir(batch_id)
        folder.mkdir(mode=0o700, exist_ok=True)
        created = info.get("created_at")
        job = cls(
            batch_id,
            "requests",
            [part],
            folder,
            {},  # no list to follow: the answers come in custom_id order
            created=float(created) if isinstance(created, (int, float)) else None,
            completion_window=str(info.get("completion_window") or "24h"),
            metadata=info.get("metadata"),
            base_url=settings.base_url,
            settings=settings,
        )
        job.save()
        return job

    @classmethod
    def load(cls, folder: Path) -> Batch:
        data = store.load(folder)
        if data is None:
            raise FileNotFoundError(f"no batch job in {folder}")
        return cls(
            data["id"],
            data["kind"],
            [Part.from_json(p) for p in data["parts"]],
            folder,
            data.get("state") or {},
            created=data.get("created"),
            completion_window=data.get("completion_window", "24h"),
            metadata=data.get("metadata"),
            estimate=data.get("estimate"),
            base_url=data.get("base_url"),
            offline=bool(data.get("offline")),
        )

    def save(self) -> None:
        store.save(
            self.dir,
            {
                "id": self.id,
                "kind": self.kind,
                "created": self.created,
                "completion_window": self.completion_window,
                "metadata": self.metadata,
                "estimate": self.estimate,
                "base_url": self.base_url,  # where its batches are; never the key
                "offline": self.offline,
                "parts": [p.to_json() for p in self.parts],
                "state": self.state,
            },
        )

    @property
    def settings(self) -> config.Settings:
        """Today's settings, sent to the server the job was submitted to."""
        if self._settings is None:
            if self.offline:
                simulator.ensure()  # QWEN_OFFLINE=1 in a new kernel: this process's simulator
            current = config.settings()
            if self.offline and not current.offline:
                raise ConfigError(
                    f"the batch job {self.id} was sent to the offline simulator, which ended with its "
                    "kernel; run qwen_magics.offline() (or set QWEN_OFFLINE=1) to run it again there"
                )
            if self.base_url and current.base_url != self.base_url and not self.offline:
                current = config.settings(base_url=self.base_url)
            self._settings = current
        return self._settings

    # -- watching -------------------------------------------------------------------------------
    def status(self) -> Status:
        """Ask the service about every part still running (ended parts are not asked again)."""
        running = [p for p in self.parts if not p.done]
        if running:
            with BatchWire(self.settings) as wire:
                for part in running:
                    try:
                        part.info = wire.retrieve(part.batch_id)
                    except (APIConnectionError, NotFoundError):
                        if not self.offline or part.input_path is None:
                            raise
                        self._send_again(wire, part)
            self.save()
        return self._summary()

    def _send_again(self, wire: BatchWire, part: Part) -> None:
        """An offline job whose simulator ended with its kernel: this process's simulator gets the
        part's saved lines (the job keeps its id; the part gets new file and batch ids)."""
        assert part.input_path is not None
        uploaded = wire.upload(part.input_path)
        tags = {**(self.metadata or {}), "qwen_magics": self.kind}
        part.info = wire.create(uploaded["id"], completion_window=self.completion_window, metadata=tags)
        part.file_id, part.batch_id = uploaded["id"], part.info["id"]
        print(
            f"qwen batch {self.id}: the offline simulator that had {part.count:,} of its lines ended with "
            "its kernel; they were sent again to this session's simulator",
            file=sys.stderr,
        )

    def _summary(self) -> Status:
        states = [p.state for p in self.parts]
        going = [s for s in states if s not in TERMINAL]
        if "cancelling" in going:
            state = "cancelling"
        elif going:
            state = min(going, key=lambda s: RUNNING.index(s) if s in RUNNING else -1)
        else:
            state = min(states, key=WORST.index)
        counts = [p.counts for p in self.parts]
        costs = [p.cost for p in self.parts]
        offline = self.offline  # the simulator's answers cost nothing
        ended = [_ended_at(p.info) for p in self.parts]
        end = max(ended) if not going and all(e is not None for e in ended) else None  # type: ignore[type-var]
        return Status(
            state=state,
            completed=sum(c[0] for c in counts),
            failed=sum(c[1] for c in counts),
            total=sum(c[2] for c in counts),
            # the service's end is a whole second: measured from the whole second it was sent
            elapsed=max(0.0, end - int(self.created)) if end is not None else time.time() - self.created,
            parts=states,
            cost=None if offline or None in costs else sum(c for c in costs if c is not None),
            estimate=None if offline else self.estimate,
            errors=[f"{p.batch_id}: {p.why}" for p in self.parts if p.why],
        )

    def wait(self, timeout: float | None = None, *, progress: bool = True) -> Batch:
        """Watch the job until every part ended (or ``timeout`` seconds). Ctrl-C stops the watching,
        not the job, and says how to pick it up again."""
        from .progress import Watch

        watch = Watch(self, enabled=progress)
        started = time.monotonic()
        delay = POLL_FIRST
        self.interrupted = False
        try:
            status = self.status()
            watch.show(status)
            while not status.done:
                left = None if timeout is None else timeout - (time.monotonic() - started)
                if left is not None and left <= 0:
                    break
                watch.sleep(delay if left is None else min(delay, left), status)
                delay = min(delay * 1.5, POLL_MOST)
                status = self.status()
                watch.show(status)
        except KeyboardInterrupt:
            self.interrupted = True
            watch.close(self._summary(), interrupted=True)
            return self
        except BaseException:
            watch.close(None)
            raise
        watch.close(status)
        return self

    def cancel(self) -> Status:
        """Ask the service to stop every part still running; what was answered is kept."""
        with BatchWire(self.settings) as wire:
            for part in self.parts:
                if not part.done:
                    part.info = wire.cancel(part.batch_id)
        self.save()
        return self._summary()

    # -- results --------------------------------------------------------------------------------
    def download(self) -> None:
        """The output and error files of every ended part, into the job's folder (once: a job whose
        files are here asks nothing of the service)."""
        files = (("output_path", "output_file_id", "output"), ("error_path", "error_file_id", "error"))
        missing = [
            (part, attr, str(part.info[key]), self.dir / f"{part.batch_id}.{suffix}.jsonl")
            for part in self.parts
            if part.done
            for attr, key, suffix in files
            if part.info.get(key) and not ((have := getattr(part, attr)) is not None and have.exists())
        ]
        if missing:
            with BatchWire(self.settings) as wire:
                for part, attr, file_id, path in missing:
                    setattr(part, attr, wire.download(file_id, path))
        for part in self.parts:
            if part.done and not isinstance((part.info.get("usage") or {}).get("input_tokens"), int):
                part.info["usage"] = _usage(part.output_path)  # the service did not sum it up
        self.save()

    def lines(self) -> Iterator[tuple[str, bytes]]:
        """``("output" | "error", line)`` over every part's downloaded files, read from disk a line at
        a time (the files are fetched first when they are ready and not here yet)."""
        if any(p.done and (p.output_path is None and p.error_path is None) for p in self.parts):
            self.download()
        for part in self.parts:
            for which, path in (("output", part.output_path), ("error", part.error_path)):
                if path is None or not path.exists():
                    continue
                with open(path, "rb") as f:
                    for raw in f:
                        raw = raw.rstrip(b"\r\n")
                        if raw:
                            yield which, raw

    def result(self, *, progress: bool = True) -> Any:
        """Wait for the end (with the progress display unless ``progress=False``), download the files
        and return what the live call returns (the kind's finisher decides: a list of Responses for
        ``qwen_magics.batch``, a DataFrame for apply)."""
        self.progress = progress
        self.wait(progress=progress)
        if self.interrupted:
            raise KeyboardInterrupt
        if not all(p.done for p in self.parts):
            raise TimeoutError(f"the batch job {self.id} has not ended; wait() for it, then result()")
        self.download()
        return finisher(self.kind).finish(self)

    def failed(self) -> Any:
        return finisher(self.kind).failed(self)

    def retry_failed(self, *, batch: bool = False) -> Any:
        return finisher(self.kind).retry_failed(self, batch=batch)

    def forget(self) -> None:
        """Delete the job's folder from the store (the batches on the service are left alone)."""
        shutil.rmtree(self.dir, ignore_errors=True)


def _claim(folder: Path, workdir: Path | None) -> Path:
    """The job's folder: ``workdir`` renamed to it, or a new one."""
    if workdir is not None and workdir.is_dir() and not folder.exists():
        shutil.move(str(workdir), folder)  # a rename inside the store; a copy from elsewhere
    else:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _moved(path: Path, folder: Path, workdir: Path | None) -> Path:
    """Where a file of ``workdir`` is now that ``workdir`` became ``folder``."""
    if workdir is None:
        return path
    try:
        return folder / path.relative_to(workdir)
    except ValueError:
        return path


def _move_into(path: Path, folder: Path) -> Path:
    """Where an input file is once the job owns it: inside its folder."""
    if path.parent == folder or folder in path.parents:
        return path
    target = folder / path.name
    shutil.move(str(path), target)
    return target


def _usage(path: Path | None) -> dict[str, Any]:
    """The tokens of an output file's answers, in the shape of a batch object's ``usage``."""
    tokens_in = tokens_out = reasoning = 0
    if path is not None and path.exists():
        with open(path, "rb") as f:
            for raw in f:
                try:
                    usage = json.loads(raw)["response"]["body"].get("usage") or {}
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
                tokens_in += int(usage.get("prompt_tokens") or 0)
                tokens_out += int(usage.get("completion_tokens") or 0)
                reasoning += int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return {
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": tokens_in + tokens_out,
    }


def _ended_at(info: dict[str, Any]) -> float | None:
    for key in ("completed_at", "failed_at", "expired_at", "cancelled_at"):
        value = info.get(key)
        if isinstance(value, (int, float)):
            return float(value)
    return None


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
