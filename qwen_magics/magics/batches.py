"""``%qwen batches``: the recent Batch API jobs (kept here, and listed by the service), and
``%qwen batches ID``: one job, part by part, with how to pick it up.

Bundles of Markdown with a plain-text twin, like the other ``%qwen`` commands.
"""

from __future__ import annotations

import time
from typing import Any

from IPython.core.error import UsageError

from .. import config
from ..api.batches import BatchWire
from ..api.render import escape_text
from ..errors import QwenError
from ..jobs import store
from ..jobs.job import Batch, Part
from ..jobs.progress import resume_hint
from .commands import _table

__all__ = ["batches_bundle"]

LIMIT = 20


def batches_bundle(rest: str) -> dict[str, str]:
    words = rest.split()
    if len(words) > 1:
        raise UsageError("%qwen batches takes one job id at most: %qwen batches [ID]")
    return job_bundle(words[0]) if words else list_bundle()


def _when(stamp: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if isinstance(stamp, (int, float)) else ""


def _counts(info: dict[str, Any], count: int) -> tuple[int, int, int]:
    return Part("", "", "", count, info=info).counts


def list_bundle() -> dict[str, str]:
    """The store's jobs and the service's batches, newest first; a batch of a stored job is listed
    once, under its job."""
    jobs = store.recent(LIMIT)
    note = ""
    service: list[dict[str, Any]] = []
    try:
        with BatchWire(config.settings()) as wire:
            service = wire.list(limit=LIMIT)
    except QwenError as exc:
        note = f"The service's list could not be read: {exc}"
    by_id = {b.get("id"): b for b in service}
    ours = {p.get("batch_id") for job in jobs for p in job.get("parts", [])}
    rows: list[tuple[float, list[str]]] = []
    for job in jobs:
        parts = job.get("parts", [])
        infos = [by_id.get(p.get("batch_id")) or p.get("info") or {} for p in parts]
        counts = [_counts(i, int(p.get("count") or 0)) for i, p in zip(infos, parts, strict=True)]
        states = sorted({str(i.get("status") or "validating") for i in infos})
        done, failed, total = (sum(c[k] for c in counts) for k in range(3))
        created = job.get("created")
        rows.append(
            (
                float(created or 0),
                [
                    str(job.get("id")),
                    str(job.get("kind")),
                    ", ".join(states),
                    f"{done:,}/{total:,}",
                    f"{failed:,}",
                    str(len(parts)),
                    _when(created),
                ],
            )
        )
    for info in service:
        if info.get("id") in ours:
            continue
        done, failed, total = _counts(info, 0)
        created = info.get("created_at")
        rows.append(
            (
                float(created or 0),
                [
                    str(info.get("id")),
                    "service",
                    str(info.get("status")),
                    f"{done:,}/{total:,}",
                    f"{failed:,}",
                    "1",
                    _when(created),
                ],
            )
        )
    rows.sort(key=lambda r: r[0], reverse=True)
    header = ["id", "kind", "state", "done", "failed", "batches", "created"]
    if not rows:
        text = f"No batch jobs yet (kept in {store.root()}). qwen_magics.batch([...]) sends one."
        if note:
            text += f"\n\n{note}"
        return {"text/markdown": escape_text(text), "text/plain": text}
    md, plain = _table(header, [r for _, r in rows])
    more = f"One job: `%qwen batches ID`; its results: `{resume_hint('ID')}.result()`."
    tail = "\n\n".join(x for x in (more, note) if x)
    return {
        "text/markdown": f"**Batch jobs**\n\n{md}\n\n{escape_text(tail)}",
        "text/plain": f"Batch jobs\n\n{plain}\n\n{tail}",
    }


def job_bundle(job_id: str) -> dict[str, str]:
    """One job as the service sees it now: each part's state and counts, the totals, the cost."""
    try:
        job = Batch.resume(job_id)
        status = job.status()
    except QwenError as exc:
        raise UsageError(f"%qwen batches {job_id}: {exc}") from None
    rows = []
    for part in job.parts:
        done, failed, total = part.counts
        rows.append([part.batch_id, part.model, part.state, f"{done:,}/{total:,}", f"{failed:,}"])
    md, plain = _table(["batch", "model", "state", "done", "failed"], rows)
    head = f"Batch job {job.id} ({job.kind}): {status}"
    lines = [*status.errors, f"Results: {resume_hint(job.id)}.result() · kept in {job.dir}"]
    return {
        "text/markdown": f"**{escape_text(head)}**\n\n{md}\n\n" + "\n\n".join(escape_text(x) for x in lines),
        "text/plain": f"{head}\n\n{plain}\n\n" + "\n".join(lines),
    }
