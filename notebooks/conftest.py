"""nbval settings for the teaching notebooks: offline mode, no pacing, display updates applied.

qwen-magics streams into one display and updates it (``update_display_data``) until the final
render, which is what a saved notebook holds. nbval ignores update messages and would compare the
first placeholder instead, so the kernel's messages are read here the way Jupyter front ends read
them: an update replaces the data of the display it names.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import nbval.kernel
import nbval.plugin
from nbformat import NotebookNode
from nbval.kernel import RunningKernel

_get_message = RunningKernel.get_message


def _get_message_applying_updates(self: RunningKernel, stream: str, timeout: float | None = None) -> Any:
    msg = _get_message(self, stream, timeout)
    if stream != "iopub":
        return msg
    kind, content = msg["msg_type"], msg["content"]
    display_id = (content.get("transient") or {}).get("display_id") if isinstance(content, dict) else None
    shown: dict[str, NotebookNode] = self.__dict__.setdefault("_displays", {})
    if kind == "display_data" and display_id:
        # nbval keeps a NotebookNode as it is (a plain dict would be copied), so updates reach it
        content["data"] = NotebookNode(content["data"])
        shown[display_id] = content["data"]
    elif kind == "update_display_data":
        data = shown.get(display_id or "")
        if data is not None:
            data.clear()
            data.update(content["data"])
        msg["msg_type"] = "execute_input"  # consumed here; nbval passes over this type
    return msg


RunningKernel.get_message = _get_message_applying_updates  # type: ignore[method-assign]


# The notebooks are checked in offline mode, with answers as fast as the offline model makes them.
# Only the notebooks' kernel gets these variables; the test process keeps its own environment.
OFFLINE_KERNEL_ENV = {"QWEN_OFFLINE": "1", "QWEN_OFFLINE_TOKENS_PER_SECOND": "0", "QWEN_HISTORY": "off"}
# batch jobs (lesson 11) are kept in a folder of the run's own, not in ~/.qwen-magics/batches
OFFLINE_KERNEL_ENV["QWEN_BATCHES"] = tempfile.mkdtemp(prefix="qwen-lesson-batches-")
_start_new_kernel = nbval.kernel.start_new_kernel


def _start_offline_kernel(*args: Any, **kwargs: Any) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "QWEN_"))}
    env.update(OFFLINE_KERNEL_ENV)
    return _start_new_kernel(*args, env=env, **kwargs)


nbval.kernel.start_new_kernel = _start_offline_kernel


# How a streamed answer is split into outputs (finished Markdown blocks frozen into their own, the
# open tail redrawn) depends on timing, as the timings in its footer do; a front end shows adjacent
# Markdown outputs as one flow. So adjacent Markdown displays are compared joined, in both the saved
# notebook and the new run: the text, its order and every other output are still compared strictly.
# A comparison grid freezes its finished rows the same way: adjacent parts of one grid are joined
# into the grid they draw together.
_compare_outputs = nbval.plugin.IPyNbCell.compare_outputs
GRID_OPEN, GRID_CLOSE = "<div class='qwen-compare'>", "</div>"


def _kind(o: Any) -> str | None:
    data = o.get("data") or {}
    if o.get("output_type") != "display_data":
        return None
    if "text/markdown" in data:
        return "markdown"
    if str(data.get("text/html", "")).startswith(GRID_OPEN):
        return "grid"
    return None


def _join(prev: dict[str, Any], data: dict[str, Any], kind: str) -> dict[str, str]:
    # the frozen parts hold Markdown or HTML alone; the last part's plain text is the whole answer
    plain = "\n\n".join(p for p in (str(prev.get("text/plain", "")), str(data.get("text/plain", ""))) if p)
    if kind == "markdown":
        return {
            "text/markdown": f"{prev.get('text/markdown', '')}\n\n{data.get('text/markdown', '')}",
            "text/plain": plain,
        }
    html = str(prev["text/html"])[: -len(GRID_CLOSE)] + str(data["text/html"])[len(GRID_OPEN) :]
    return {"text/html": html, "text/plain": plain}


def _joined(outputs: list[Any]) -> list[Any]:
    out: list[Any] = []
    for o in outputs:
        kind = _kind(o)
        if kind is not None and out and _kind(out[-1]) == kind:
            joined = _join(out[-1].get("data") or {}, o.get("data") or {}, kind)
            out[-1] = NotebookNode({**out[-1], "data": NotebookNode(joined)})
        else:
            out.append(o)
    return out


def _compare_joined(self: Any, test: Any, ref: Any, skip_compare: Any = None) -> Any:
    return _compare_outputs(self, _joined(test), _joined(ref), skip_compare)


nbval.plugin.IPyNbCell.compare_outputs = _compare_joined  # type: ignore[method-assign]
