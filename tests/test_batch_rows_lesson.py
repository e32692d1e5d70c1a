"""Lesson 11 as students see it: what its sections say is what their saved outputs show."""

from __future__ import annotations

from .test_lessons import NOTEBOOKS, section

LESSON = NOTEBOOKS / "11_batch.ipynb"


def outputs(cells: list[dict]) -> str:  # type: ignore[type-arg]
    shown = []
    for cell in cells:
        for o in cell.get("outputs", ()):
            shown.append("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(shown)


def test_lesson_11_labels_a_table_as_one_batch_job_with_the_live_frame() -> None:
    found = section(LESSON, "## One question per row, as one job")
    code = " ".join(c["source"] for c in found if c["cell_type"] == "code")
    assert "batch=True" in code and 'model="qwen-plus"' in code
    saved = outputs(found)
    assert "completed · 40/40 done" in saved and "40 rows" in saved
    assert "sentiment" in saved and "stars" in saved and "_error" in saved
    assert "stars         Int64" in saved


def test_lesson_11_shows_the_line_sent_with_thinking_set_explicitly() -> None:
    saved = outputs(section(LESSON, "## What was sent"))
    assert "0 POST /v1/chat/completions" in saved
    assert "'enable_thinking': False" in saved and "response_format: json_schema" in saved


def test_lesson_11_lists_rows_cut_at_max_tokens() -> None:
    saved = outputs(section(LESSON, "## Rows that fail"))
    assert "4 failed" in saved and "answered without usable JSON" in saved
    assert "no usable JSON" in saved
