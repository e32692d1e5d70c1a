"""to_dataframe's record finding and types; apply over a DataFrame against the real emulator."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pandas as pd
import pytest
from IPython.utils.capture import capture_output

from qwen_magics import apply, to_dataframe
from qwen_magics.emulator import Emulator
from qwen_magics.errors import ParameterError
from qwen_magics.structured.ask import ask_json

from .waiting import CtrlC

PLANETS = [
    {"name": "Mercury", "order": 1, "moons": 0, "facts": {"type": "rocky", "rings": False}},
    {"name": "Venus", "order": 2, "moons": 0, "facts": {"type": "rocky", "rings": False}},
    {"name": "Saturn", "order": 6, "moons": 146, "facts": {"type": "gas giant", "rings": True}},
]


def test_a_list_of_records_is_one_row_each() -> None:
    frame = to_dataframe([{"name": "Mercury", "order": 1}, {"name": "Venus", "order": 2}])
    assert list(frame.columns) == ["name", "order"]
    assert frame["name"].tolist() == ["Mercury", "Venus"]


@pytest.mark.parametrize("key", ["items", "planets", "results"])
def test_a_wrapped_list_is_found(key: str) -> None:
    frame = to_dataframe({key: PLANETS, "count": 3})
    assert len(frame) == 3
    assert frame["name"].tolist() == ["Mercury", "Venus", "Saturn"]


def test_a_single_object_is_one_row() -> None:
    frame = to_dataframe({"name": "Mars", "moons": 2})
    assert frame.to_dict("records") == [{"name": "Mars", "moons": 2}]


def test_nested_objects_become_dotted_columns() -> None:
    frame = to_dataframe(PLANETS)
    assert list(frame.columns) == ["name", "order", "moons", "facts.type", "facts.rings"]
    assert frame["facts.type"].tolist() == ["rocky", "rocky", "gas giant"]


def test_the_schema_types_become_nullable_dtypes() -> None:
    rows = [{"name": "Mars", "moons": 2, "mass": 0.107}, {"name": "Pluto", "moons": None}]
    frame = to_dataframe(rows, schema="name, moons int, mass float, facts.rings bool")
    assert list(frame.columns) == ["name", "moons", "mass", "facts.rings"]
    assert str(frame["name"].dtype) == "string"
    assert str(frame["moons"].dtype) == "Int64"
    assert str(frame["mass"].dtype) == "Float64"
    assert str(frame["facts.rings"].dtype) == "boolean"
    assert frame["moons"].tolist()[0] == 2 and frame["moons"].isna().tolist() == [False, True]
    assert frame["facts.rings"].isna().all()  # a schema field nobody answered is still a column


def test_json_text_with_a_fence_is_read() -> None:
    frame = to_dataframe('Here:\n```json\n{"planets": [{"name": "Mars"}, {"name": "Earth"}]}\n```')
    assert frame["name"].tolist() == ["Mars", "Earth"]


def test_a_list_of_plain_values_is_a_value_column() -> None:
    assert to_dataframe([1, 2, 3])["value"].tolist() == [1, 2, 3]


def test_what_is_not_tabular_says_so() -> None:
    with pytest.raises(TypeError, match="not tabular"):
        to_dataframe(42)
    with pytest.raises(ValueError, match="several lists of records"):
        to_dataframe({"planets": PLANETS, "moons": [{"name": "Io"}]})


def test_a_response_brings_its_schema(qwen_env: Emulator) -> None:
    r = ask_json(
        "list planets", schema="name, order int, moons int, facts.type", multi=True, model="qwen-plus"
    )
    frame = to_dataframe(r)
    assert len(frame) == 2
    assert str(frame["order"].dtype) == "Int64"
    assert str(frame["facts.type"].dtype) == "string"


# -- apply ---------------------------------------------------------------------------------------
NAMES = ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune", "Pluto", "Ceres"]


def test_apply_answers_each_row_in_order_with_the_frames_index(qwen_env: Emulator) -> None:
    df = pd.DataFrame({"name": NAMES, "kind": "planet"}, index=[f"p{i}" for i in range(len(NAMES))])
    out = apply(df, "Describe the {kind} {name} as JSON", concurrency=4, progress=False)
    assert out.index.tolist() == df.index.tolist()
    assert out["answer"].tolist() == [f"Describe the planet {n} as JSON" for n in NAMES]
    assert out["_error"].isna().all()
    assert out.attrs["usage"]["total_tokens"] > 0
    assert len(qwen_env.chat_requests) == len(NAMES)


def test_apply_runs_rows_concurrently(qwen_env: Emulator) -> None:
    qwen_env.latency = 0.2
    df = pd.DataFrame({"name": NAMES[:8]})
    out = apply(df, "{name} as JSON", concurrency=8, progress=False)
    assert out["_error"].isna().all()
    arrivals = sorted(r.at for r in qwen_env.chat_requests)
    # all eight in flight at once: the last arrived while the first was still held for its 0.2 s
    # (bench/apply_throughput.py measures rows a second against a plain loop)
    assert arrivals[-1] - arrivals[0] < 0.2, f"arrivals spread over {arrivals[-1] - arrivals[0]:.2f}s"


def test_failing_rows_fill_error_and_do_not_stop_the_others(qwen_env: Emulator) -> None:
    qwen_env.add_fault("status", status=400, times=3)  # 400s are not retried
    df = pd.DataFrame({"name": NAMES})
    out = apply(df, "Describe {name} as JSON", concurrency=4, progress=False)
    failed = out["_error"].notna()
    assert failed.sum() == 3
    assert out.loc[failed, "_error"].str.contains("data_inspection_failed").all()
    assert out.loc[failed, "answer"].isna().all()
    expected = [f"Describe {n} as JSON" for n, f in zip(NAMES, failed, strict=True) if not f]
    assert out.loc[~failed, "answer"].tolist() == expected


def test_apply_with_a_schema_has_typed_columns(qwen_env: Emulator) -> None:
    df = pd.DataFrame({"name": ["Mars", "Venus"]}, index=[4, 2])
    out = apply(
        df, "Describe {name}", schema="name, moons int, facts.type", model="qwen-plus", progress=False
    )
    assert list(out.columns) == ["name", "moons", "facts.type", "_error"]
    assert out.index.tolist() == [4, 2]
    assert str(out["moons"].dtype) == "Int64"
    assert out["moons"].tolist() == [1, 1]


def test_apply_works_inside_a_running_event_loop(qwen_env: Emulator) -> None:
    async def in_a_kernel() -> pd.DataFrame:
        return apply(pd.DataFrame({"name": ["Mars", "Venus"]}), "{name} as JSON", progress=False)

    out = asyncio.run(in_a_kernel())
    assert out["answer"].tolist() == ["Mars as JSON", "Venus as JSON"]


def test_a_template_field_that_is_not_a_column_is_refused(qwen_env: Emulator) -> None:
    df = pd.DataFrame({"name": ["Mars"]})
    with pytest.raises(ParameterError, match=r"\{planet\} is not a column; the columns are name"):
        apply(df, "Describe {planet}", progress=False)
    with pytest.raises(ParameterError, match="name the column"):
        apply(df, "Describe {}", progress=False)
    assert qwen_env.chat_requests == []


def test_a_schema_that_is_not_a_schema_is_refused(qwen_env: Emulator) -> None:
    df = pd.DataFrame({"name": ["Mars"]})
    with pytest.raises(ParameterError, match="not a JSON Schema"):
        apply(df, "Describe {name}", schema={"name": "str"}, progress=False)
    with pytest.raises(ParameterError, match="schema"):
        apply(df, "Describe {name}", schema=42, progress=False)


def test_a_bad_parameter_stops_apply_once_before_anything_is_sent(qwen_env: Emulator) -> None:
    df = pd.DataFrame({"name": NAMES})
    with pytest.raises(ParameterError, match="temperature"):
        apply(df, "{name} as JSON", temperature=5, progress=False)
    assert qwen_env.chat_requests == []


def test_apply_rides_out_rate_limits(qwen_env: Emulator) -> None:
    qwen_env.add_fault("status", status=429, times=3)
    df = pd.DataFrame({"name": NAMES[:6]})
    out = apply(df, "{name} as JSON", concurrency=3, progress=False)
    assert out["_error"].isna().all()
    assert out["answer"].tolist() == [f"{n} as JSON" for n in NAMES[:6]]
    assert sum(r.status == 429 for r in qwen_env.chat_requests) == 3


def test_in_a_script_apply_shows_a_text_bar_then_leaves_one_line(qwen_env: Emulator) -> None:
    qwen_env.latency = 0.05
    qwen_env.add_fault("status", status=400, times=1)
    script = (
        "import pandas as pd, qwen_magics\n"
        f"qwen_magics.apply(pd.DataFrame({{'name': {NAMES[:6]!r}}}), '{{name}} as JSON', concurrency=1)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "qwen apply:" in run.stderr and "row/s" in run.stderr  # tqdm's bar while it works
    assert run.stdout == run.stdout.strip() + "\n" and run.stdout.startswith("qwen apply: 6 rows in ")
    assert run.stdout.strip().endswith("· 1 failed (see the _error column)")  # what stays


def test_in_a_notebook_the_progress_bar_ends_as_a_line_of_text(shell, qwen_env: Emulator) -> None:  # type: ignore[no-untyped-def]
    qwen_env.latency = 0.2  # about 0.8 s: the bar redraws four times a second
    shell.user_ns["df"] = pd.DataFrame({"name": NAMES[:8]})
    with capture_output() as cap:
        shell.run_cell("import qwen_magics\nout = qwen_magics.apply(df, '{name} as JSON', concurrency=2)")
    frames = [o for o in cap.outputs if o.transient.get("display_id")]
    assert {o.transient["display_id"] for o in frames} == {frames[0].transient["display_id"]}  # one output
    assert "<progress value='0' max='8'" in frames[0].data["text/html"] and len(frames) >= 3
    assert not any("application/vnd.jupyter.widget-view+json" in o.data for o in cap.outputs)  # no widget
    assert list(frames[-1].data) == ["text/plain"] and frames[-1].data["text/plain"].startswith(
        "qwen apply: 8 rows in"
    )


def test_ctrl_c_keeps_the_rows_already_answered(qwen_env: Emulator) -> None:
    qwen_env.latency = 0.3
    df = pd.DataFrame({"name": NAMES * 2})
    # two at a time, each request starting when one ends: the sixth arrival means four rows answered
    with CtrlC(lambda: len(qwen_env.chat_requests) >= 6, what="four rows to be answered"):
        out = apply(df, "{name} as JSON", concurrency=2, progress=False)  # 20 rows: 3 s uninterrupted
    assert out.attrs["interrupted"] is True
    done = out["_error"].isna()
    assert 2 <= done.sum() < len(df)
    assert out.loc[done, "answer"].tolist() == [
        f"{n} as JSON" for n, d in zip(NAMES * 2, done, strict=True) if d
    ]
    assert (out.loc[~done, "_error"] == "interrupted before this row was answered").all()
