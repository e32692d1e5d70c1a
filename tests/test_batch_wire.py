"""The Batch API over real HTTP: the emulator's Files and Batches endpoints, through ``BatchWire`` and
through the openai SDK, so the shapes are OpenAI's and the lifecycle is the service's."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import openai
import pytest

from qwen_magics import config
from qwen_magics.api.batches import BatchWire
from qwen_magics.emulator import Emulator
from qwen_magics.errors import AuthenticationError, NotFoundError, RateLimitError, ServerError

from .conftest import TEST_KEY
from .waiting import wait_until

DONE = ("completed", "failed", "expired", "cancelled")


def line(custom_id: str, text: str = "hi", model: str = "qwen-plus", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}], **body},
    }


def write(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.fixture
def wire(emulator: Emulator):  # type: ignore[no-untyped-def]
    with BatchWire(config.settings(base_url=emulator.base_url, api_key=TEST_KEY)) as client:
        yield client


def run(wire: BatchWire, path: Path, timeout: float = 20) -> dict[str, Any]:
    """Upload, create, and wait for the batch to end; its last state."""
    batch = wire.create(wire.upload(path)["id"])
    wait_until(lambda: wire.retrieve(batch["id"])["status"] in DONE, timeout, "the batch to end")
    return wire.retrieve(batch["id"])


def contents(wire: BatchWire, file_id: str | None, tmp_path: Path) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    path = wire.download(file_id, tmp_path / f"{file_id}.jsonl")
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_batch_answers_each_line_like_chat(wire: BatchWire, emulator: Emulator, tmp_path: Path) -> None:
    path = write(tmp_path / "in.jsonl", [line(str(i), f"question {i}") for i in range(5)])
    uploaded = wire.upload(path)
    assert uploaded["purpose"] == "batch" and uploaded["bytes"] == path.stat().st_size
    batch = run(wire, path)
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    assert batch["error_file_id"] is None
    out = contents(wire, batch["output_file_id"], tmp_path)
    assert sorted(x["custom_id"] for x in out) == ["0", "1", "2", "3", "4"]
    first = next(x for x in out if x["custom_id"] == "3")
    assert first["error"] is None and first["response"]["status_code"] == 200
    body = first["response"]["body"]
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"].startswith("You asked: question 3")
    assert body["usage"]["total_tokens"] > 0


def test_lifecycle_passes_through_every_state(wire: BatchWire, emulator: Emulator, tmp_path: Path) -> None:
    emulator.batches.pause = 0.3
    emulator.batches.speed = 20
    batch = wire.create(wire.upload(write(tmp_path / "in.jsonl", [line(str(i)) for i in range(10)]))["id"])
    seen = [batch["status"]]

    def ended() -> bool:
        status = wire.retrieve(batch["id"])["status"]
        if status != seen[-1]:
            seen.append(status)
        return status in DONE

    wait_until(ended, 20, "the batch to end", every=0.02)
    assert seen == ["validating", "in_progress", "finalizing", "completed"]
    done = wire.retrieve(batch["id"])
    assert done["in_progress_at"] and done["finalizing_at"] and done["completed_at"]


def test_lines_the_chat_refuses_go_to_the_error_file(
    wire: BatchWire, emulator: Emulator, tmp_path: Path
) -> None:
    lines = [
        line("good"),
        line("empty", messages=[]),
        line("hot", temperature=5),
        {**line("notbody"), "body": "text"},
        line("streams", stream=True),
    ]
    batch = run(wire, write(tmp_path / "in.jsonl", lines))
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 5, "completed": 1, "failed": 4}
    errors = {x["custom_id"]: x for x in contents(wire, batch["error_file_id"], tmp_path)}
    assert set(errors) == {"empty", "hot", "notbody", "streams"}
    assert errors["hot"]["error"]["message"] == "Temperature should be in [0.0, 2.0)"
    assert errors["hot"]["response"]["status_code"] == 400
    assert [x["custom_id"] for x in contents(wire, batch["output_file_id"], tmp_path)] == ["good"]


def test_unknown_model_fails_each_line(wire: BatchWire, tmp_path: Path) -> None:
    batch = run(
        wire, write(tmp_path / "in.jsonl", [line("a", model="qwen-nope"), line("b", model="qwen-nope")])
    )
    assert batch["status"] == "completed"
    errors = contents(wire, batch["error_file_id"], tmp_path)
    assert {x["error"]["code"] for x in errors} == {"model_not_found"}


def test_line_error_fault_sends_a_line_to_the_error_file(
    wire: BatchWire, emulator: Emulator, tmp_path: Path
) -> None:
    emulator.add_fault("line_error", status=500, times=2)
    batch = run(wire, write(tmp_path / "in.jsonl", [line(str(i)) for i in range(6)]))
    assert batch["request_counts"] == {"total": 6, "completed": 4, "failed": 2}
    errors = contents(wire, batch["error_file_id"], tmp_path)
    assert {x["error"]["code"] for x in errors} == {"internal_error"}
    assert not [r for r in emulator.requests if r.status == 500]  # an HTTP request was never hit


@pytest.mark.parametrize(
    ("lines", "code"),
    [
        (['{"custom_id": "1", "method": "POST"', line("2")], "invalid_json_line"),
        ([line("1"), line("2", model="qwen-flash")], "mixed_models"),
        ([line("1"), line("1")], "duplicate_custom_id"),
        ([{**line("1"), "url": "/v1/embeddings"}], "invalid_url"),
        ([{**line("1"), "method": "GET"}], "invalid_url"),
        ([line("1", model="qwen3.6-plus")], "model_not_supported"),
        ([], "empty_file"),
    ],
)
def test_invalid_file_fails_with_the_services_errors(
    wire: BatchWire, tmp_path: Path, lines: list[Any], code: str
) -> None:
    batch = run(wire, write(tmp_path / "in.jsonl", lines))
    assert batch["status"] == "failed" and batch["failed_at"]
    assert batch["errors"]["object"] == "list"
    assert batch["errors"]["data"][0]["code"] == code
    assert batch["output_file_id"] is None and batch["error_file_id"] is None


def test_unsupported_model_is_refused_naming_the_batch_models(wire: BatchWire, tmp_path: Path) -> None:
    batch = run(wire, write(tmp_path / "in.jsonl", [line("1", model="qwen3.6-plus")]))
    message = batch["errors"]["data"][0]["message"]
    assert "qwen3.6-plus" in message and "qwen-plus, qwen-flash, qwen-turbo" in message


@pytest.mark.parametrize(
    ("limit", "value", "code"),
    [
        ("lines", 3, "too_many_requests"),
        ("bytes", 300, "file_too_large"),
        ("line_bytes", 100, "line_too_large"),
    ],
)
def test_file_over_the_limits_fails(
    wire: BatchWire, emulator: Emulator, tmp_path: Path, limit: str, value: int, code: str
) -> None:
    setattr(emulator.batches.limits, limit, value)
    batch = run(wire, write(tmp_path / "in.jsonl", [line(str(i)) for i in range(4)]))
    assert batch["status"] == "failed"
    assert batch["errors"]["data"][0]["code"] == code


def test_batch_fail_fault(wire: BatchWire, emulator: Emulator, tmp_path: Path) -> None:
    emulator.add_fault("batch_fail", code="quota_exceeded", message="No batch quota left.")
    batch = run(wire, write(tmp_path / "in.jsonl", [line("1")]))
    assert batch["status"] == "failed"
    assert batch["errors"]["data"][0] == {
        "param": None,
        "line": None,
        "code": "quota_exceeded",
        "message": "No batch quota left.",
    }


def test_expired_batch_returns_what_it_answered(wire: BatchWire, emulator: Emulator, tmp_path: Path) -> None:
    emulator.add_fault("batch_expire", after=3)
    batch = run(wire, write(tmp_path / "in.jsonl", [line(str(i)) for i in range(8)]))
    assert batch["status"] == "expired" and batch["expired_at"]
    assert batch["request_counts"] == {"total": 8, "completed": 3, "failed": 5}
    assert len(contents(wire, batch["output_file_id"], tmp_path)) == 3
    errors = contents(wire, batch["error_file_id"], tmp_path)
    assert {x["error"]["code"] for x in errors} == {"batch_expired"}
    assert len(errors) == 5


def test_window_that_passes_expires_the_batch(wire: BatchWire, emulator: Emulator, tmp_path: Path) -> None:
    emulator.batches.hour = 0.02  # a 24h window lasts 0.48 s
    emulator.batches.speed = 20
    batch = run(wire, write(tmp_path / "in.jsonl", [line(str(i)) for i in range(100)]))
    assert batch["status"] == "expired"
    assert batch["expires_at"] - batch["created_at"] <= 1
    counts = batch["request_counts"]
    assert 0 < counts["completed"] < 100 and counts["completed"] + counts["failed"] == 100
    assert {x["error"]["code"] for x in contents(wire, batch["error_file_id"], tmp_path)} == {"batch_expired"}


def test_cancel_keeps_the_answered_lines(wire: BatchWire, emulator: Emulator, tmp_path: Path) -> None:
    emulator.batches.speed = 20
    batch = wire.create(wire.upload(write(tmp_path / "in.jsonl", [line(str(i)) for i in range(200)]))["id"])
    wait_until(lambda: wire.retrieve(batch["id"])["request_counts"]["completed"] >= 2, 10, "some answers")
    assert wire.cancel(batch["id"])["status"] == "cancelling"
    wait_until(lambda: wire.retrieve(batch["id"])["status"] == "cancelled", 10, "the cancel")
    done = wire.retrieve(batch["id"])
    counts = done["request_counts"]
    assert 2 <= counts["completed"] < 200 and counts["completed"] + counts["failed"] == 200
    answered = contents(wire, done["output_file_id"], tmp_path)
    skipped = contents(wire, done["error_file_id"], tmp_path)
    assert len(answered) == counts["completed"]
    assert {x["error"]["code"] for x in skipped} == {"batch_cancelled"}
    assert {x["custom_id"] for x in answered + skipped} == {str(i) for i in range(200)}


def test_list_pages_newest_first(wire: BatchWire, tmp_path: Path) -> None:
    file_id = wire.upload(write(tmp_path / "in.jsonl", [line("1")]))["id"]
    ids = [wire.create(file_id)["id"] for _ in range(3)]
    first = wire.list(limit=2)
    assert [b["id"] for b in first] == ids[::-1][:2]
    assert [b["id"] for b in wire.list(after=first[-1]["id"], limit=2)] == [ids[0]]


def test_deleted_file_is_gone(wire: BatchWire, tmp_path: Path) -> None:
    file_id = wire.upload(write(tmp_path / "in.jsonl", [line("1")]))["id"]
    wire.delete_file(file_id)
    with pytest.raises(NotFoundError, match="does not exist"):
        wire.download(file_id, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.jsonl.part").exists()
    with pytest.raises(NotFoundError):
        wire.retrieve("batch_nope")


def test_refused_key_is_an_authentication_error(emulator: Emulator, tmp_path: Path) -> None:
    emulator.api_key = TEST_KEY
    settings = config.settings(base_url=emulator.base_url, api_key="sk-wrong-key-0000000000")
    with BatchWire(settings) as wire, pytest.raises(AuthenticationError) as caught:
        wire.upload(write(tmp_path / "in.jsonl", [line("1")]))
    assert "sk-wrong" not in str(caught.value)


def test_rate_limit_on_a_read_is_tried_again(wire: BatchWire, emulator: Emulator, tmp_path: Path) -> None:
    batch = wire.create(wire.upload(write(tmp_path / "in.jsonl", [line("1")]))["id"])
    emulator.add_fault("status", status=429, times=1)
    assert wire.retrieve(batch["id"])["id"] == batch["id"]
    assert [r.status for r in emulator.requests[-2:]] == [429, 200]


def test_server_error_on_create_is_not_repeated(wire: BatchWire, emulator: Emulator, tmp_path: Path) -> None:
    file_id = wire.upload(write(tmp_path / "in.jsonl", [line("1")]))["id"]
    emulator.add_fault("status", status=500, times=1)
    with pytest.raises(ServerError):
        wire.create(file_id)
    assert not emulator.batches.batches


def test_rate_limit_on_create_is_tried_again(wire: BatchWire, emulator: Emulator, tmp_path: Path) -> None:
    file_id = wire.upload(write(tmp_path / "in.jsonl", [line("1")]))["id"]
    emulator.add_fault("status", status=429, times=5)
    with pytest.raises(RateLimitError):
        BatchWire(wire.settings, retry=type(wire.retry)(attempts=2, backoff=0.01)).create(file_id)
    assert len(emulator.batches.batches) == 0


def test_batch_costs_half_the_live_price(wire: BatchWire, emulator: Emulator, tmp_path: Path) -> None:
    import httpx

    lines = [line(str(i), f"question {i}") for i in range(4)]
    for x in lines:
        httpx.post(
            f"{emulator.base_url}/chat/completions",
            json=x["body"],
            headers={"Authorization": f"Bearer {TEST_KEY}"},
        ).raise_for_status()
    live = emulator.spent
    emulator.charges.clear()
    batch = run(wire, write(tmp_path / "in.jsonl", lines))
    assert [c.batch for c in emulator.charges] == [True]
    assert emulator.spent == pytest.approx(live / 2)
    assert (
        batch["usage"]["total_tokens"]
        == emulator.charges[0].prompt_tokens + emulator.charges[0].completion_tokens
    )


def test_upload_and_download_stream_rather_than_hold_the_file(
    wire: BatchWire, emulator: Emulator, tmp_path: Path
) -> None:
    path = write(tmp_path / "in.jsonl", [line(str(i), "x" * 2000) for i in range(5000)])  # ~10 MB
    size = path.stat().st_size
    tracemalloc.start()
    try:
        uploaded = wire.upload(path)
        _, up_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        wire.download(uploaded["id"], tmp_path / "back.jsonl")
        _, down_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (tmp_path / "back.jsonl").read_bytes() == path.read_bytes()
    assert up_peak < size / 5 and down_peak < size / 5  # both ends of the wire, in this process


def test_openai_sdk_reads_the_same_endpoints(emulator: Emulator, tmp_path: Path) -> None:
    sdk = openai.OpenAI(api_key=TEST_KEY, base_url=emulator.base_url, max_retries=0)
    try:
        path = write(
            tmp_path / "in.jsonl",
            [line(str(i), f"question {i}") for i in range(3)] + [line("x", messages=[])],
        )
        with open(path, "rb") as f:
            uploaded = sdk.files.create(file=f, purpose="batch")
        assert uploaded.purpose == "batch" and uploaded.bytes == path.stat().st_size
        assert sdk.files.retrieve(uploaded.id).filename == "in.jsonl"
        batch = sdk.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"job": "sdk"},
        )
        assert batch.status == "validating" and batch.metadata == {"job": "sdk"}
        wait_until(lambda: sdk.batches.retrieve(batch.id).status in DONE, 20, "the batch to end")
        done = sdk.batches.retrieve(batch.id)
        assert done.status == "completed"
        assert done.request_counts is not None and done.request_counts.completed == 3
        assert done.output_file_id and done.error_file_id
        out = [json.loads(x) for x in sdk.files.content(done.output_file_id).text.splitlines()]
        assert {x["custom_id"] for x in out} == {"0", "1", "2"}
        assert out[0]["response"]["body"]["choices"][0]["message"]["content"].startswith("You asked")
        errors = [json.loads(x) for x in sdk.files.content(done.error_file_id).text.splitlines()]
        assert [x["custom_id"] for x in errors] == ["x"]
        assert [b.id for b in sdk.batches.list(limit=5)] == [batch.id]
        second = sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert sdk.batches.cancel(second.id).status in ("cancelling", "completed")
        assert sdk.files.delete(uploaded.id).deleted is True
    finally:
        sdk.close()


def test_admin_settings_set_the_batch_speed(emulator: Emulator) -> None:
    import httpx

    httpx.post(
        f"http://127.0.0.1:{emulator.port}/_emulator/settings",
        json={"batch_speed": 5, "batch_pause": 0.5, "batch_hour": 1},
    ).raise_for_status()
    assert (emulator.batches.speed, emulator.batches.pause, emulator.batches.hour) == (5.0, 0.5, 1.0)


def test_usage_summed_from_the_output_file_matches_the_service(
    wire: BatchWire, emulator: Emulator, tmp_path: Path
) -> None:
    from qwen_magics.jobs.job import _usage

    batch = run(wire, write(tmp_path / "in.jsonl", [line(str(i), f"question {i}") for i in range(4)]))
    summed = _usage(wire.download(batch["output_file_id"], tmp_path / "out.jsonl"))
    reported = batch["usage"]
    assert (summed["input_tokens"], summed["output_tokens"], summed["total_tokens"]) == (
        reported["input_tokens"],
        reported["output_tokens"],
        reported["total_tokens"],
    )


def test_upload_sent_in_chunks_is_read_whole(emulator: Emulator, tmp_path: Path) -> None:
    import httpx

    content = "".join(json.dumps(line(str(i))) + "\n" for i in range(300)).encode()
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n'
        b"Content-Type: application/jsonl\r\n\r\n" + content + b"\r\n--XyZ--\r\n"
    )
    pieces = (body[i : i + 1000] for i in range(0, len(body), 1000))  # no length: chunked encoding
    resp = httpx.post(
        f"{emulator.base_url}/files",
        content=pieces,
        headers={"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert resp.status_code == 200, resp.text
    uploaded = resp.json()
    assert uploaded["bytes"] == len(content) and uploaded["filename"] == "in.jsonl"
    with BatchWire(config.settings(base_url=emulator.base_url, api_key=TEST_KEY)) as wire:
        wire.download(uploaded["id"], tmp_path / "back.jsonl")
    assert (tmp_path / "back.jsonl").read_bytes() == content


def test_upload_without_purpose_batch_is_refused(wire: BatchWire, emulator: Emulator, tmp_path: Path) -> None:
    import httpx

    resp = httpx.post(
        f"{emulator.base_url}/files",
        files={"file": ("in.jsonl", b"{}\n")},
        data={"purpose": "fine-tune"},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    )
    assert resp.status_code == 400 and "purpose must be `batch`" in resp.json()["error"]["message"]
