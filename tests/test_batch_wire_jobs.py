"""Batch API jobs against the emulator over HTTP: ``qwen_magics.batch``, ``Batch`` (submit, status,
wait, result, cancel, resume), the store, splitting and the checks made before anything is sent,
``%qwen batches``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from IPython.utils.capture import capture_output

import qwen_magics
from qwen_magics import config
from qwen_magics.api.batches import BatchWire
from qwen_magics.api.render import format_cost
from qwen_magics.emulator import Emulator
from qwen_magics.errors import APIError, ParameterError
from qwen_magics.jobs import Batch, store
from qwen_magics.jobs.files import Limits, encode_line, write_parts

from .conftest import TEST_KEY
from .waiting import CtrlC, wait_until


@pytest.fixture
def jobs(qwen_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator, and a store of this test's own."""
    monkeypatch.setenv("QWEN_BATCHES", str(tmp_path / "batches"))
    return qwen_env


def test_batch_returns_responses_in_the_order_asked(jobs: Emulator) -> None:
    prompts = [f"question {i}" for i in range(6)]
    out = qwen_magics.batch(prompts, model="qwen-plus", temperature=0.2)
    assert [r.text for r in out] == [
        f"You asked: question {i}. This is the emulator's answer at temperature 0.2." for i in range(6)
    ]
    assert all(r.batch and r.error is None and r.model == "qwen-plus" for r in out)
    assert out[2].request["temperature"] == 0.2
    assert sum(r.cost or 0 for r in out) == pytest.approx(jobs.spent)  # half price, as billed


def test_failed_request_comes_back_in_its_place(jobs: Emulator) -> None:
    hot = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}], "temperature": 5}
    out = qwen_magics.batch(["first", hot, "third"], model="qwen-plus")
    assert out[0].text.startswith("You asked: first") and out[2].text.startswith("You asked: third")
    assert isinstance(out[1].error, APIError) and out[1].error.status == 400
    assert "Temperature should be in [0.0, 2.0)" in str(out[1].error)
    assert out[1].text == ""


def test_one_batch_per_model(jobs: Emulator) -> None:
    def ask(model: str, text: str) -> dict[str, Any]:
        return {"model": model, "messages": [{"role": "user", "content": text}]}

    job = qwen_magics.batch(
        [ask("qwen-plus", "a"), ask("qwen-flash", "b"), ask("qwen-plus", "c"), ask("qwen-turbo", "d")],
        wait=False,
    )
    assert [(p.model, p.count) for p in job.parts] == [("qwen-plus", 2), ("qwen-flash", 1), ("qwen-turbo", 1)]
    out = job.result()
    assert [(r.model, r.text.split(".")[0]) for r in out] == [
        ("qwen-plus", "You asked: a"),
        ("qwen-flash", "You asked: b"),
        ("qwen-plus", "You asked: c"),
        ("qwen-turbo", "You asked: d"),
    ]


def test_more_lines_than_a_file_takes_are_split(jobs: Emulator) -> None:
    job = qwen_magics.batch(
        [f"q{i}" for i in range(5)], model="qwen-flash", limits=Limits(lines=2), wait=False
    )
    assert [p.count for p in job.parts] == [2, 2, 1]
    assert len(jobs.batches.batches) == 3
    assert [r.text.split(".")[0] for r in job.result()] == [f"You asked: q{i}" for i in range(5)]
    assert job.status().parts == ["completed"] * 3


def test_write_parts_splits_by_size_and_keeps_one_model_a_file(tmp_path: Path) -> None:
    line = encode_line("0", {"model": "m", "messages": []})
    lines = [("a", line, "r0"), ("b", line, "r1"), ("a", line, "r2"), ("a", line, "r3")]
    parts = write_parts(lines, tmp_path, limits=Limits(bytes=2 * (len(line) + 1)))
    assert [(m, n) for _, m, n in parts] == [("a", 2), ("b", 1), ("a", 1)]
    assert all(p.read_bytes().count(b"\n") == n for p, _, n in parts)


def test_line_over_the_limit_is_refused_before_upload(jobs: Emulator) -> None:
    with pytest.raises(ParameterError, match=r"request 1 is 3.1 KB as a batch line; .* at most 1 KB a line"):
        qwen_magics.batch(["short", "x" * 3000], model="qwen-plus", limits=Limits(line_bytes=1024))
    assert not jobs.requests
    assert not any(store.root().iterdir())


def test_model_without_batch_support_is_refused_before_sending(jobs: Emulator) -> None:
    with pytest.raises(ParameterError) as caught:
        qwen_magics.batch(["hi"], model="qwen3.6-plus")
    assert str(caught.value) == (
        "qwen3.6-plus does not take Batch API jobs; the models that do: qwen-plus, qwen-flash, qwen-turbo"
    )
    assert not jobs.requests


def test_job_is_kept_in_the_store_without_the_key(jobs: Emulator) -> None:
    job = qwen_magics.batch(["a", "b"], model="qwen-plus", wait=False)
    assert job.dir == store.root() / job.id and job.id == job.parts[0].batch_id
    saved = (job.dir / "job.json").read_text()
    assert TEST_KEY not in saved and "api_key" not in saved
    state = json.loads(saved)
    assert state["kind"] == "requests" and state["parts"][0]["count"] == 2
    assert job.parts[0].input_path is not None and job.parts[0].input_path.parent == job.dir
    job.result()
    assert sorted(p.name for p in job.dir.iterdir()) == sorted(
        ["job.json", job.parts[0].input_path.name, f"{job.id}.output.jsonl"]
    )


def test_resume_from_the_store_gives_the_results(jobs: Emulator) -> None:
    job = qwen_magics.batch(["a", "b", "c"], model="qwen-plus", wait=False)
    again = Batch.resume(job.id)
    assert (again.kind, [p.batch_id for p in again.parts]) == ("requests", [job.id])
    assert [r.text.split(".")[0] for r in again.result()] == ["You asked: a", "You asked: b", "You asked: c"]
    assert again.status().state == "completed" and again.status().completed == 3
    assert Batch.resume(job.dir).id == job.id  # its folder names it too


def test_resume_a_batch_known_only_to_the_service(jobs: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b"".join(
            encode_line(str(i), {"model": "qwen-plus", "messages": [{"role": "user", "content": t}]}) + b"\n"
            for i, t in [(1, "b"), (0, "a")]
        )
    )
    with BatchWire(config.settings()) as wire:
        batch_id = wire.create(wire.upload(path)["id"])["id"]
    job = Batch.resume(batch_id)
    assert job.kind == "requests" and job.parts[0].model == "qwen-plus"
    assert [r.text.split(".")[0] for r in job.result()] == ["You asked: a", "You asked: b"]


def test_cancel_keeps_what_was_answered(jobs: Emulator) -> None:
    jobs.batches.speed = 20
    job = qwen_magics.batch([f"q{i}" for i in range(100)], model="qwen-plus", wait=False)
    wait_until(lambda: job.status().completed >= 2, 10, "some answers")
    assert job.cancel().state in ("cancelling", "cancelled")
    out = job.result()
    assert job.status().state == "cancelled"
    answered = [r for r in out if r.error is None]
    assert 2 <= len(answered) < 100 and answered[0].text.startswith("You asked: q0")
    assert {r.error.code for r in out if r.error is not None} == {"batch_cancelled"}  # type: ignore[union-attr]


def test_expired_job_returns_the_answered_requests(jobs: Emulator) -> None:
    jobs.add_fault("batch_expire", after=2)
    out = qwen_magics.batch(["a", "b", "c", "d"], model="qwen-plus")
    assert [r.error is None for r in out] == [True, True, False, False]
    assert "expired" in str(out[3].error)


def test_failed_file_shows_the_services_reason(jobs: Emulator) -> None:
    jobs.add_fault("batch_fail", code="quota_exceeded", message="No batch quota left.")
    job = qwen_magics.batch(["a"], model="qwen-plus", wait=False)
    status = job.wait(progress=False).status()
    assert status.state == "failed" and status.errors == [f"{job.id}: No batch quota left."]
    assert all(r.error is not None for r in job.result())


def test_lines_stream_both_files(jobs: Emulator) -> None:
    hot = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}], "temperature": 5}
    job = qwen_magics.batch(["a", hot], model="qwen-plus", wait=False)
    job.wait(progress=False)
    seen = [(which, json.loads(raw)["custom_id"]) for which, raw in job.lines()]
    assert seen == [("output", "0"), ("error", "1")]


def test_retry_failed_asks_the_failed_ones_live(jobs: Emulator) -> None:
    jobs.add_fault("line_error", status=500, times=1)
    job = qwen_magics.batch(["a", "b"], model="qwen-plus", wait=False)
    job.wait(progress=False)
    assert [i for i, _ in job.failed()] == [0]
    again = job.retry_failed()
    assert [r.text.split(".")[0] for r in again] == ["You asked: a", "You asked: b"]
    assert not again[0].batch and again[1].batch
    assert len(jobs.chat_requests) == 1


def test_wait_shows_progress_and_the_cost(
    shell: Any, jobs: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = qwen_magics.batch(["a", "b"], model="qwen-plus", wait=False)
    with capture_output() as captured:
        job.wait()
    last = captured.outputs[-1].data["text/plain"]
    assert last.startswith(f"qwen batch {job.id}: completed · 2/2 done · ")
    assert last.endswith(format_cost(jobs.spent))
    assert " · 0.0s · " not in last  # a finished job is timed in the service's whole seconds
    assert any("<progress" in o.data.get("text/html", "") for o in captured.outputs[:-1])


def test_estimate_is_shown_before_the_cost_is_known(jobs: Emulator) -> None:
    jobs.batches.pause = 5
    job = qwen_magics.batch(["a", "b"], model="qwen-plus", max_tokens=100, wait=False)
    assert job.estimate is not None and job.estimate > 0
    text = str(job.status())
    assert text.startswith("validating · 0/2 done") and text.endswith(f"estimate {format_cost(job.estimate)}")
    job.cancel()


def test_ctrl_c_while_waiting_keeps_the_job(jobs: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    jobs.batches.speed = 10
    job = qwen_magics.batch([f"q{i}" for i in range(30)], model="qwen-plus", wait=False)
    assert not any(r.method == "GET" for r in jobs.requests)  # so the press lands inside wait()
    with CtrlC(lambda: any(r.method == "GET" for r in jobs.requests), what="the wait to look"):
        job.wait()
    assert job.interrupted
    out = capsys.readouterr().out
    assert f'Pick it up with qwen_magics.Batch.resume("{job.id}")' in out
    assert jobs.batches.batches[job.id].status == "in_progress"  # the job goes on
    jobs.batches.speed = None
    out = Batch.resume(job.id).result()
    assert len(out) == 30 and all(r.error is None for r in out)


def test_qwen_batches_lists_jobs_and_shows_one(ip: Any, jobs: Emulator, tmp_path: Path) -> None:
    job = qwen_magics.batch(["a", "b"], model="qwen-plus", wait=False)
    job.wait(progress=False)
    path = tmp_path / "other.jsonl"
    path.write_bytes(
        encode_line("0", {"model": "qwen-flash", "messages": [{"role": "user", "content": "x"}]}) + b"\n"
    )
    with BatchWire(config.settings()) as wire:
        other = wire.create(wire.upload(path)["id"])["id"]
    with capture_output() as captured:
        ip.run_line_magic("qwen", "batches")
    plain = captured.outputs[0].data["text/plain"]
    assert job.id in plain and other in plain
    mine = next(x for x in plain.splitlines() if x.startswith(job.id))
    assert "requests" in mine and "completed" in mine and "2/2" in mine
    theirs = next(x for x in plain.splitlines() if x.startswith(other))
    assert "service" in theirs
    with capture_output() as captured:
        ip.run_line_magic("qwen", f"batches {job.id}")
    plain = captured.outputs[0].data["text/plain"]
    assert plain.startswith(f"Batch job {job.id} (requests): completed · 2/2 done")
    assert f'qwen_magics.Batch.resume("{job.id}").result()' in plain


def test_qwen_batches_unknown_id_is_a_usage_error(ip: Any, jobs: Emulator) -> None:
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="batch_nope"):
        ip.run_line_magic("qwen", "batches batch_nope")


def test_hybrid_models_get_their_thinking_switch_explicitly(jobs: Emulator) -> None:
    job = qwen_magics.batch(["a"], model="qwen-flash", wait=False)
    assert job.parts[0].input_path is not None
    line = json.loads(job.parts[0].input_path.read_text())
    assert line["body"]["enable_thinking"] is False and "stream" not in line["body"]
    assert line["url"] == "/v1/chat/completions" and line["custom_id"] == "0"


def test_batch_runs_on_the_offline_simulator_in_a_script(tmp_path: Path) -> None:
    from .test_plain_python import run_script

    code = (
        "import qwen_magics\n"
        "out = qwen_magics.batch(['What is the tide?', 'Name a colour'], model='qwen-flash')\n"
        "print(len(out), all(r.text and r.error is None for r in out), [r.cost for r in out])\n"
    )
    out = run_script(tmp_path, code, QWEN_OFFLINE="1", QWEN_BATCHES=str(tmp_path / "batches"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "2 True [None, None]"  # the simulator's answers cost nothing
    assert "$" not in out.stdout


def test_a_job_whose_settings_cannot_be_saved_is_refused_before_anything_is_sent(
    jobs: Emulator, tmp_path: Path
) -> None:
    body = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}
    inputs = write_parts([("qwen-plus", encode_line("0", body), "request 0")], tmp_path)
    with pytest.raises(ParameterError, match="cannot be saved"):
        Batch.submit(inputs, kind="requests", state={"picture": object()})
    assert not any(r.path.endswith(("/files", "/batches")) for r in jobs.requests)  # nothing uploaded
