"""apply(batch=True) and compare(batch=True) against the emulator's Batch API over HTTP: the lines,
the limits, and the merge back into exactly what the live calls return."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pydantic
import pytest

from qwen_magics import compare
from qwen_magics.emulator import Emulator
from qwen_magics.errors import ParameterError
from qwen_magics.jobs.files import Limits
from qwen_magics.structured.apply import apply

TEMPLATE = "Describe the planet {name} ({moons} moons)"
SCHEMA = "name, moons int, facts.type"


@pytest.fixture
def batches(qwen_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator, with the job store in this test's own folder and a model that takes batches."""
    monkeypatch.setenv("QWEN_BATCHES", str(tmp_path / "batches"))
    monkeypatch.setenv("QWEN_MODEL", "qwen-plus")
    return qwen_env


def planets(n: int = 5) -> pd.DataFrame:
    names = ["Mars", "Venus", "Earth", "Jupiter", "Saturn", "Neptune", "Uranus", "Mercury"]
    return pd.DataFrame(
        {"name": [names[i % len(names)] + f"-{i}" for i in range(n)], "moons": [i % 4 for i in range(n)]},
        index=pd.Index([f"p{n - i}" for i in range(n)], name="planet"),  # not a range, not sorted
    )


def sent_lines(emu: Emulator) -> list[dict[str, Any]]:
    """Every line of every input file the emulator was sent."""
    lines = []
    for file in emu.batches.files.values():
        if file.purpose == "batch":
            lines += [json.loads(raw) for raw in file.lines()]
    return lines


def batch_count(emu: Emulator) -> int:
    return sum(r.method == "POST" and r.path.endswith("/batches") for r in emu.requests)


def test_batch_apply_returns_what_live_apply_returns(batches: Emulator) -> None:
    df = planets(6)
    live = apply(df, TEMPLATE, progress=False)
    batch = apply(df, TEMPLATE, batch=True, progress=False)
    assert list(batch.columns) == list(live.columns)
    assert batch.index.equals(live.index) and batch.index.name == "planet"
    assert batch.dtypes.to_dict() == live.dtypes.to_dict()
    pd.testing.assert_frame_equal(batch, live)
    assert batch.attrs["batch"]["cost"] is not None


def test_batch_lines_carry_the_live_request_without_streaming(batches: Emulator) -> None:
    df = planets(3)
    apply(df, TEMPLATE, schema=SCHEMA, model="qwen-plus", temperature=0.3, progress=False)
    live = {r.body["messages"][-1]["content"]: r.body for r in batches.chat_requests}
    batches.reset()
    apply(df, TEMPLATE, schema=SCHEMA, model="qwen-plus", temperature=0.3, batch=True, progress=False)
    lines = sent_lines(batches)
    assert [line["custom_id"] for line in lines] == ["0", "1", "2"]
    for line in lines:
        assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
        body = line["body"]
        sent = dict(live[body["messages"][-1]["content"]])
        assert sent.pop("stream") is True
        sent.pop("stream_options")
        assert body.pop("enable_thinking") is False  # a hybrid model's switch is set explicitly in a batch
        assert body == sent


def test_structured_batch_parses_and_types_like_live(batches: Emulator) -> None:
    df = planets(4)
    live = apply(df, TEMPLATE, schema=SCHEMA, progress=False)
    batch = apply(df, TEMPLATE, schema=SCHEMA, batch=True, progress=False)
    assert list(batch.columns) == ["name", "moons", "facts.type", "_error"]
    assert batch.dtypes.to_dict() == live.dtypes.to_dict()
    assert str(batch["moons"].dtype) == "Int64"
    assert batch["_error"].isna().all()


def test_error_lines_become_the_rows_error(batches: Emulator) -> None:
    batches.add_fault("line_error", status=500, times=2)
    out = apply(planets(5), TEMPLATE, batch=True, progress=False)
    failed = out["_error"].dropna()
    assert len(failed) == 2
    assert all("500" in e for e in failed)
    assert out["_error"].isna().sum() == 3


def test_validation_failures_are_listed_and_retried_live(batches: Emulator) -> None:
    df = planets(4)
    batches.queue_reply("no JSON here at all")  # the first line's answer
    job = apply(df, TEMPLATE, schema=SCHEMA, batch=True, wait=False, progress=False)
    out = job.result()
    assert out["_error"].notna().sum() == 1
    first = df.index[0]
    assert "no usable JSON" in out.loc[first, "_error"]
    listed = job.failed()
    assert list(listed.index) == [first]
    assert listed.loc[first, "answer"] == "no JSON here at all"
    again = job.retry_failed()
    assert again["_error"].isna().all()
    assert again.index.equals(df.index)
    assert batches.chat_requests[-1].body["stream"] is True  # asked live


def test_validation_failures_retried_as_a_new_batch(batches: Emulator) -> None:
    df = planets(4)
    batches.queue_reply("no JSON")
    job = apply(df, TEMPLATE, schema=SCHEMA, batch=True, wait=False, progress=False)
    job.result()
    before = batch_count(batches)
    again = job.retry_failed(batch=True)
    assert batch_count(batches) == before + 1
    assert again["_error"].isna().all()
    assert again.index.equals(df.index)


def test_rows_split_into_several_files_merge_back_in_order(batches: Emulator) -> None:
    df = planets(7)
    live = apply(df, TEMPLATE, progress=False)
    job = apply(df, TEMPLATE, batch=True, wait=False, limits=Limits(lines=3), progress=False)
    assert [p.count for p in job.parts] == [3, 3, 1]
    assert batch_count(batches) == 3
    pd.testing.assert_frame_equal(job.result(), live)


def test_split_by_bytes(batches: Emulator) -> None:
    df = planets(4)
    one = len(json.dumps({"x": TEMPLATE})) + 200
    job = apply(df, TEMPLATE, batch=True, wait=False, limits=Limits(bytes=one * 2), progress=False)
    assert len(job.parts) >= 2
    assert job.result().index.equals(df.index)


def test_a_line_over_the_limit_is_refused_naming_the_row(batches: Emulator) -> None:
    df = planets(3)
    df.loc["p2", "name"] = "x" * 5000
    with pytest.raises(ParameterError, match=r"row 'p2' is 5\.\d KB as a batch line; .* at most 4 KB"):
        apply(df, TEMPLATE, batch=True, limits=Limits(line_bytes=4096), progress=False)
    assert batch_count(batches) == 0 and not batches.batches.files


def test_six_megabytes_is_the_default_line_limit(batches: Emulator) -> None:
    df = planets(2)
    df.loc["p1", "name"] = "y" * (6 * 1024 * 1024)
    with pytest.raises(ParameterError, match=r"row 'p1' is .* MB as a batch line; .* at most 6 MB a line"):
        apply(df, TEMPLATE, batch=True, progress=False)
    assert not batches.batches.files


def test_a_model_without_batch_support_is_refused_naming_those_with_it(batches: Emulator) -> None:
    refused = r"qwen3\.6-plus does not take Batch API jobs; the models that do: qwen-plus, "
    with pytest.raises(ParameterError, match=refused):
        apply(planets(2), TEMPLATE, model="qwen3.6-plus", batch=True, progress=False)
    assert not batches.requests


def test_rows_the_template_does_not_fit_keep_their_error(batches: Emulator) -> None:
    df = pd.DataFrame({"name": ["Mars", "Venus"], "moons": [2, 0]})
    template = "Planet {name:>5} has {moons:d} moons"
    df["moons"] = df["moons"].astype(object)
    df.loc[1, "moons"] = "none"
    live = apply(df, template, progress=False)
    batch = apply(df, template, batch=True, progress=False)
    pd.testing.assert_frame_equal(batch, live)
    assert "does not fit" in batch.loc[1, "_error"]


def test_the_job_merges_from_its_folder_alone(batches: Emulator) -> None:
    from qwen_magics.jobs import Batch

    df = planets(3)
    job = apply(df, TEMPLATE, schema=SCHEMA, batch=True, wait=False, progress=False)
    job.wait(progress=False)
    again = Batch.resume(job.id)  # what a new kernel has: the id, and the store
    assert again is not job
    out = again.result()
    assert out.index.equals(df.index)
    assert list(out.columns) == ["name", "moons", "facts.type", "_error"]


def test_batch_compare_is_one_batch_per_model_and_a_comparison(batches: Emulator) -> None:
    from qwen_magics.comparison.compare import Comparison

    grid_of = {"model": ["qwen-plus", "qwen-flash"], "temperature": [0.2, 0.9], "samples": 2, "show": False}
    grid = compare("Name a colour.", batch=True, **grid_of)
    assert isinstance(grid, Comparison)
    assert batch_count(batches) == 2
    for file in (f for f in batches.batches.files.values() if f.purpose == "batch"):
        models = {json.loads(raw)["body"]["model"] for raw in file.lines()}
        assert len(models) == 1
    assert len(grid.cells) == 4 and all(len(c.responses) == 2 for c in grid.cells)
    assert all(r.error is None and r.text for r in grid.responses)
    df = grid.df
    assert len(df) == 8 and df["cost"].notna().all()
    live = compare("Name a colour.", **grid_of)
    assert grid.labels == live.labels
    assert list(df.columns) == list(live.df.columns)
    assert df["cost"].sum() == pytest.approx(live.df["cost"].sum() / 2, rel=0.2)
    assert "Name a colour" in grid._repr_html_()


def test_batch_compare_runs_the_checks(batches: Emulator) -> None:
    grid = compare(
        "Capital of {country}?",
        cases=[{"country": "France"}, {"country": "Peru"}],
        checks=lambda r: bool(r.text),
        model="qwen-plus",
        show=False,
        batch=True,
    )
    summary = grid.summary()
    assert summary["pass_rate"].tolist() == [1.0]


def test_batch_compare_refuses_a_model_without_batch(batches: Emulator) -> None:
    with pytest.raises(ParameterError, match="does not take Batch API jobs"):
        compare("hi", model=["qwen-plus", "qwen3.6-plus"], show=False, batch=True)
    assert not batches.requests


def test_error_lines_retried_as_a_new_batch(batches: Emulator) -> None:
    batches.add_fault("line_error", status=500, times=2)
    df = planets(5)
    job = apply(df, TEMPLATE, batch=True, wait=False, progress=False)
    assert job.result()["_error"].notna().sum() == 2
    again = job.retry_failed(batch=True)
    assert again["_error"].isna().all()
    assert len(sent_lines(batches)) == 5 + 2  # the first file, then only the two failed rows


class Moon(pydantic.BaseModel):
    name: str
    radius_km: float


def test_a_pydantic_schema_is_found_again_from_the_saved_job(batches: Emulator) -> None:
    from qwen_magics.jobs import Batch
    from qwen_magics.structured.batch import schema_from

    df = planets(3)
    job = apply(df, "Describe a moon of {name}", schema=Moon, batch=True, wait=False, progress=False)
    saved = Batch.resume(job.id).state["schema"]
    assert saved["model"] == f"{__name__}:Moon"
    assert schema_from(saved).model is Moon
    out = job.result()
    assert list(out.columns) == ["name", "radius_km", "_error"]
    assert str(out["radius_km"].dtype) == "Float64"


def test_a_new_interpreter_merges_the_job_from_its_folder(batches: Emulator, tmp_path: Path) -> None:
    """...and without orjson, through the standard library's json."""
    df = planets(4)
    job = apply(df, TEMPLATE, schema=SCHEMA, batch=True, wait=False, progress=False)
    here = job.result()
    script = (
        "import sys\n"
        "sys.modules['orjson'] = None  # not installed\n"
        "import qwen_magics as qm\n"
        f"out = qm.Batch.resume({job.id!r}).result()\n"
        "out.to_pickle(sys.argv[1])\n"
    )
    saved = tmp_path / "out.pkl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    subprocess.run(
        [sys.executable, "-c", script, str(saved)], env=env, check=True, capture_output=True, timeout=60
    )
    there = pd.read_pickle(saved)
    there.attrs = here.attrs = {}
    pd.testing.assert_frame_equal(there, here)


def test_a_batch_comparison_keeps_failed_samples_in_their_cells_and_retries_them(batches: Emulator) -> None:
    batches.add_fault("line_error", status=500, times=1)
    job = compare("Name a colour.", temperature=[0.2, 0.9], show=False, batch=True, wait=False)
    grid = job.result()
    assert [len(c.failed) for c in grid.cells].count(1) == 1
    assert len(job.failed()) == 1 and "500" in job.failed()[0][2]
    again = job.retry_failed()
    assert all(r.error is None and r.text for r in again.responses)
    assert batches.chat_requests[-1].body["stream"] is True  # asked live


def test_progress_false_draws_nothing_while_the_batch_runs(
    batches: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    apply(planets(2), TEMPLATE, batch=True, progress=False)
    assert capsys.readouterr().out == ""
    apply(planets(2), TEMPLATE, batch=True)
    assert "batch" in capsys.readouterr().out  # the job's progress line, in a plain script


OFFLINE_SUBMIT = """
import sys, pandas as pd, qwen_magics as qm
job = qm.apply(pd.DataFrame({"a": range(40)}), "Say {a}", batch=True, wait=False, model="qwen-plus")
print(job.id)
"""
OFFLINE_RESUME = """
import sys, qwen_magics as qm
frame = qm.Batch.resume(sys.argv[1]).result(progress=False)
print(len(frame), int(frame["_error"].isna().sum()))
"""


def test_an_offline_job_left_unfinished_runs_again_in_the_next_kernel(tmp_path: Path) -> None:
    """The offline simulator ends with its process; the job's saved lines go to the next one's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    env.update(
        QWEN_OFFLINE="1",
        QWEN_HISTORY="off",
        QWEN_BATCHES=str(tmp_path / "batches"),
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )

    def run(script: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    job_id = run(OFFLINE_SUBMIT).stdout.strip()
    again = run(OFFLINE_RESUME, job_id)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == ["40", "40"]
    assert "sent again to this session's simulator" in again.stderr
    # finished and downloaded: a kernel with a key of its own reads it from the folder, asking no one
    done = run(OFFLINE_RESUME, job_id, QWEN_OFFLINE="0", DASHSCOPE_API_KEY="sk-unused")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["40", "40"]
