"""Replay: answers from the history or a saved notebook instead of the server, for every feature
that asks; a real shell, the emulator over HTTP (stopped where replay must not need it)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.utils.capture import capture_output

import qwen_magics as qm
from qwen_magics import historydb, simulator
from qwen_magics.api import replay
from qwen_magics.api.record import SHORT, USAGE, answers, fingerprint
from qwen_magics.emulator import Emulator

from .conftest import TEST_KEY
from .outputs import magic, rendered_markdown


def records(outputs: list[Any]) -> list[dict[str, Any]]:
    """The answers' records the outputs carry in their metadata, as the saved notebook keeps them."""
    last: dict[Any, Any] = {}
    for o in outputs:
        last[(o.transient or {}).get("display_id") or id(o)] = {"data": o.data, "metadata": o.metadata or {}}
    return [a for shown in last.values() for a in answers(shown)]


def notebook(path: Path, *outputs_of_cells: list[Any]) -> Path:
    """A saved .ipynb whose code cells hold these captured outputs (data and metadata), as a front
    end writes them."""
    cells = []
    for outputs in outputs_of_cells:
        saved = []
        last: dict[Any, Any] = {}
        for o in outputs:
            last[(o.transient or {}).get("display_id") or id(o)] = o
        for o in last.values():
            # as nbformat writes them: a multi-line string as its lines
            data = {k: v.splitlines(keepends=True) if isinstance(v, str) else v for k, v in o.data.items()}
            saved.append({"output_type": "display_data", "data": data, "metadata": o.metadata or {}})
        cells.append(
            {"cell_type": "code", "source": "", "metadata": {}, "outputs": saved, "execution_count": 1}
        )
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def sent(emu: Emulator) -> int:
    return len(emu.chat_requests)


def test_a_cell_replays_from_the_history_and_sends_nothing(
    ip: Any, history: Path, qwen_env: Emulator
) -> None:
    magic(ip, "replay on")
    first = magic(ip, "-t 0.7 --thinking -o a", "Why is the sea salty?")
    assert sent(qwen_env) == 1
    historydb.flush(10)
    qwen_env.requests.clear()
    again = magic(ip, "-t 0.7 --thinking -o b", "Why is the sea salty?")
    a, b = ip.user_ns["a"], ip.user_ns["b"]
    assert qwen_env.chat_requests == []
    assert b.replayed and (b.text, b.reasoning, b.usage, b.finish_reason) == (
        a.text,
        a.reasoning,
        a.usage,
        "stop",
    )
    assert (b.ttft, b.elapsed) == (pytest.approx(a.ttft), pytest.approx(a.elapsed))
    md = rendered_markdown(again.outputs)
    assert "replayed, recorded " in md and a.text in md and "Thinking" in md
    assert "replayed" not in rendered_markdown(first.outputs)
    assert len(historydb.search(history)) == 1  # a replayed answer is not recorded again


def test_on_asks_the_server_when_the_record_has_no_answer(ip: Any, history: Path, qwen_env: Emulator) -> None:
    magic(ip, "replay on")
    magic(ip, "-t 0.2 -o a", "Name a sea.")
    magic(ip, "-t 0.3 -o b", "Name a sea.")  # another temperature: another request
    assert sent(qwen_env) == 2 and not ip.user_ns["b"].replayed
    magic(ip, "replay off")
    magic(ip, "-t 0.2 -o c", "Name a sea.")
    assert sent(qwen_env) == 3 and not ip.user_ns["c"].replayed


def test_only_misses_in_one_line_naming_the_prompt(ip: Any, history: Path, qwen_env: Emulator) -> None:
    magic(ip, "replay only")
    cap = magic(ip, "-t 0.2", "What is the deepest trench in the Pacific Ocean?")
    shown = cap.outputs[-1].data["text/plain"]
    assert "replay only: no recorded answer to 'What is the deepest trench in the Pacific Ocean?'" in shown
    assert "nothing was sent" in shown and "\n" not in shown.split("\n", 1)[-1].strip()
    with pytest.raises(
        qm.ReplayMiss, match=r"^replay only: no recorded answer to 'Name a sea\.' \(qwen"
    ) as err:
        qm.ask("Name a sea.")
    assert "\n" not in str(err.value)
    assert qwen_env.chat_requests == []


def test_replay_only_needs_no_key_and_no_server(
    ip: Any, history: Path, qwen_env: Emulator, monkeypatch: Any
) -> None:
    a = qm.ask("Name a planet.", temperature=0.5).complete()
    historydb.flush(10)
    qwen_env.stop()
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    replay.use("only")
    b = qm.ask("Name a planet.", temperature=0.5)
    assert b.text == a.text and b.replayed
    assert "replayed, recorded" in b.footer()


def test_ask_and_aask_replay_what_was_recorded(history: Path, qwen_env: Emulator) -> None:
    a = qm.ask("Name a moon of Jupiter.", thinking=False).complete()

    async def asked() -> qm.Response:
        return await (await qm.aask("Name a moon of Saturn.", thinking=False)).acomplete()

    s = asyncio.run(asked())
    historydb.flush(10)
    qwen_env.requests.clear()
    replay.use("only")
    assert qm.ask("Name a moon of Jupiter.", thinking=False).text == a.text
    again = asyncio.run(asked())
    assert again.text == s.text and again.replayed and again.usage == s.usage
    assert qwen_env.chat_requests == []


def test_a_comparison_replays_each_sample_distinctly(ip: Any, history: Path, qwen_env: Emulator) -> None:
    qwen_env.generator = "lm"  # samples that differ
    with capture_output() as first:
        original = qm.compare("Tell me about the sea.", temperature=[0.5, 1.2], samples=3, max_tokens=30)
    assert sent(qwen_env) == 6
    answers = {(c.label, i): r.text for c in original for i, r in enumerate(c.responses)}
    assert len(set(answers.values())) > 1
    assert len({a["fingerprint"] for a in records(first.outputs)}) == 6
    historydb.flush(10)
    qwen_env.requests.clear()
    replay.use("only")
    with capture_output() as again:
        replayed = qm.compare("Tell me about the sea.", temperature=[0.5, 1.2], samples=3, max_tokens=30)
    assert qwen_env.chat_requests == []
    assert {(c.label, i): r.text for c in replayed for i, r in enumerate(c.responses)} == answers
    assert all(r.replayed for r in replayed.responses)
    assert "replayed" in again.outputs[-1].data["text/html"]


def test_apply_structured_output_and_the_panel_replay(ip: Any, history: Path, qwen_env: Emulator) -> None:
    frame = pd.DataFrame({"animal": ["cat", "owl"]}, index=["a", "b"])
    with capture_output():
        done = qm.apply(frame, "Describe {animal} in five words.")
        planet = qm.ask_json("A planet.", schema="name, moons int")
        p = qm.panel("Name a sea.", temperature=0.4)
    p.run_button.click()
    assert p.wait(10)
    historydb.flush(10)
    qwen_env.requests.clear()
    replay.use("only")
    with capture_output():
        again = qm.apply(frame, "Describe {animal} in five words.")
        planet_again = qm.ask_json("A planet.", schema="name, moons int")
        q = qm.panel("Name a sea.", temperature=0.4)
    q.run_button.click()
    assert q.wait(10)
    assert qwen_env.chat_requests == []
    pd.testing.assert_frame_equal(
        again.drop(columns=["_elapsed"], errors="ignore"), done.drop(columns=["_elapsed"], errors="ignore")
    )
    assert planet_again.data == planet.data and planet_again.replayed
    [run], [rerun] = p.runs, q.runs
    assert rerun.response is not None and run.response is not None
    assert rerun.response.text == run.response.text and rerun.response.replayed


def test_pace_streams_at_the_recorded_pace(history: Path, qwen_env: Emulator) -> None:
    qwen_env.token_delay = 0.01
    a = qm.ask("Why is the sea salty?").complete()
    assert a.elapsed > 0.3
    historydb.flush(10)
    replay.use("only")
    started = time.perf_counter()
    assert qm.ask("Why is the sea salty?").text == a.text
    at_once = time.perf_counter() - started
    replay.use("only --pace")
    b = qm.ask("Why is the sea salty?")
    started = time.perf_counter()
    pieces = sum(1 for e in b if e.type in ("text", "reasoning"))
    paced = time.perf_counter() - started
    assert at_once < 0.1 and paced > 0.6 * (a.elapsed - a.ttft)
    assert pieces > 10 and b.text == a.text  # it streams word by word


def test_a_saved_notebook_is_its_own_cassette(
    ip: Any, tmp_path: Path, qwen_env: Emulator, monkeypatch: Any
) -> None:
    first = magic(ip, "-t 0.7 --thinking -o a", "Why is the sea salty?")
    with capture_output() as grid:
        qm.compare("Name a colour.", temperature=[0.2, 0.8], samples=2, seed=1)
    with capture_output() as structured:
        planet = qm.ask_json("A planet.", schema="name, moons int", show=True)
    saved = notebook(tmp_path / "x.ipynb", first.outputs, grid.outputs, structured.outputs)
    [record] = records(first.outputs)
    a = ip.user_ns["a"]
    assert (
        record["text"] == a.text and record["reasoning"] == a.reasoning and record["finish_reason"] == "stop"
    )
    usage = dict(zip(USAGE, record["usage"], strict=True))  # the counts, in USAGE's order
    assert usage["completion_tokens"] == a.usage.completion_tokens and record["ttft"] == round(a.ttft, 3)
    assert record["fingerprint"] == fingerprint(a.request, f"127.0.0.1:{qwen_env.port}")[:SHORT]
    assert TEST_KEY not in saved.read_text() and TEST_KEY[-12:] not in saved.read_text()

    qwen_env.stop()
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    magic(ip, f"replay only {saved}")
    again = magic(ip, "-t 0.7 --thinking -o b", "Why is the sea salty?")
    assert ip.user_ns["b"].text == a.text and "replayed" in rendered_markdown(again.outputs)
    with capture_output():
        comparison = qm.compare("Name a colour.", temperature=[0.2, 0.8], samples=2, seed=1)
        assert qm.ask_json("A planet.", schema="name, moons int", show=True).data == planet.data
    assert all(r.replayed for r in comparison.responses)
    assert records(again.outputs)[0]["fingerprint"] == record["fingerprint"]  # the replay keeps the record
    with pytest.raises(qm.ReplayMiss, match=str(saved)):
        qm.ask("Why is the sky blue?")


def test_only_alone_replays_from_the_notebook_the_front_end_names(
    ip: Any, tmp_path: Path, qwen_env: Emulator, monkeypatch: Any
) -> None:
    first = magic(ip, "-t 0.3 -o a", "Name a sea.")
    saved = notebook(tmp_path / "mine.ipynb", first.outputs)
    qwen_env.stop()
    monkeypatch.setenv("JPY_SESSION_NAME", "some/folder/mine.ipynb")  # JupyterLab: from its root
    monkeypatch.chdir(tmp_path)  # the kernel runs in the notebook's folder
    magic(ip, "replay only")
    again = magic(ip, "-t 0.3 -o b", "Name a sea.")
    assert ip.user_ns["b"].replayed and ip.user_ns["b"].text == ip.user_ns["a"].text
    assert "replayed" in rendered_markdown(again.outputs)
    ip.user_ns["__vsc_ipynb_file__"] = str(saved)  # VS Code says the whole path
    monkeypatch.chdir("/")
    try:
        assert qm.ask("Name a sea.", temperature=0.3).replayed
    finally:
        del ip.user_ns["__vsc_ipynb_file__"]


def test_a_notebook_recorded_against_a_server_replays_offline(
    ip: Any, tmp_path: Path, qwen_env: Emulator, monkeypatch: Any
) -> None:
    first = magic(ip, "-t 0.3", "Name a sea.")
    saved = notebook(tmp_path / "x.ipynb", first.outputs)
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    monkeypatch.delenv("DASHSCOPE_BASE_URL")
    emu = qm.offline(0)
    try:
        emu.requests.clear()
        magic(ip, f"replay only {saved}")
        r = qm.ask("Name a sea.", temperature=0.3)
        assert r.text == records(first.outputs)[0]["text"] and r.replayed and r.offline
        assert emu.chat_requests == []
    finally:
        simulator.stop()


def test_the_fingerprint_holds_across_ports_and_restarts() -> None:
    request = {"model": "qwen3.6-plus", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    assert fingerprint(request, "127.0.0.1:40001") == fingerprint(request, "localhost:51234")
    assert fingerprint(request, "127.0.0.1:1", offline=True) == fingerprint(
        request, "127.0.0.1:2", offline=True
    )
    assert fingerprint(request, "127.0.0.1:1", offline=True) != fingerprint(request, "127.0.0.1:1")
    assert fingerprint(request, "example.com:8000") != fingerprint(request, "example.com:8001")
    assert fingerprint(request, "h", sample=1) != fingerprint(request, "h")


def test_replay_settings_read_as_written(ip: Any, history: Path, tmp_path: Path, monkeypatch: Any) -> None:
    from IPython.core.error import UsageError

    assert str(replay.current()) == "off"
    monkeypatch.setenv("QWEN_REPLAY", "only --pace")
    assert replay.current() == replay.Replay("only", None, True)
    shown = magic(ip, "replay").outputs[-1].data["text/plain"]
    assert shown.startswith("Replay only: answers come from ") and "at the recorded pace" in shown
    with pytest.raises(UsageError, match="write on, off or only"):
        ip.run_line_magic("qwen", "replay sometimes")
    with pytest.raises(UsageError, match="no file"):
        ip.run_line_magic("qwen", f"replay only {tmp_path / 'missing.ipynb'}")
    magic(ip, "replay on")
    assert ip.find_magic("qwen").__self__.replay == "on" and replay.current().mode == "on"
    ip.run_line_magic("config", "QwenMagics.replay = 'off'")
    assert replay.current().mode == "off"


@pytest.mark.kernel
def test_a_notebook_recorded_in_a_kernel_replays_in_another_with_the_server_stopped(
    emulator: Emulator, tmp_path: Path
) -> None:
    import nbformat  # here, not at the top: collecting the in-process tests stays free of its 2 s import
    from nbclient import NotebookClient

    from .kernels import kernel_env

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext qwen_magics\nimport qwen_magics as qm"),
        nbformat.v4.new_code_cell("%%qwen -t 0.3 --thinking\nWhy is the sea salty?"),
        nbformat.v4.new_code_cell(
            'g = qm.compare("Name a colour.", temperature=[0.2, 0.8], samples=2, seed=1)'
        ),
        nbformat.v4.new_code_cell("print(_qwen.text)\nprint([r.text for r in g.responses])"),
    ]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute(env=kernel_env(emulator))
    saved = tmp_path / "recorded.ipynb"
    nbformat.write(nb, saved)
    assert len(emulator.chat_requests) == 5 and TEST_KEY not in saved.read_text()
    emulator.stop()

    replay_nb = nbformat.read(saved, as_version=4)
    replay_nb.cells.insert(1, nbformat.v4.new_code_cell(f"%qwen replay only {saved}"))
    env = {k: v for k, v in kernel_env(emulator).items() if k != "DASHSCOPE_API_KEY"}  # no key either
    NotebookClient(replay_nb, timeout=60, kernel_name="python3").execute(env=env)
    assert replay_nb.cells[4].outputs[0].text == nb.cells[3].outputs[0].text  # the same answers
    markdown = replay_nb.cells[2].outputs[-1].data["text/markdown"]
    assert "replayed, recorded" in markdown
    assert "replayed, recorded" in replay_nb.cells[3].outputs[-1].data["text/html"]
    assert len(emulator.chat_requests) == 5  # nothing more reached the (stopped) emulator


def run_and_compare(p: Any) -> Any:
    """The panel's Run, then its Compare tab over two temperatures, each waited for."""
    p.run_button.click()
    assert p.wait(10)
    for t in (0.2, 0.9):
        p.temperature.value = t
        p.compare_mode.add_button.click()
    p.compare_mode.run_button.click()
    assert p.wait(10)
    return p


def test_apply_and_the_panel_leave_their_records_in_the_notebook(
    ip: Any, tmp_path: Path, qwen_env: Emulator, monkeypatch: Any
) -> None:
    frame = pd.DataFrame({"animal": ["cat", "owl"]}, index=["a", "b"])
    qwen_env.queue_reply('{"name": "cat", "legs": "four"}')  # row a is asked again
    with capture_output() as job:
        done = qm.apply(frame, "Describe {animal}.", schema="name, legs int", concurrency=1)
    with capture_output() as shown:
        p = run_and_compare(qm.panel("Name a sea.", temperature=0.4))
    assert len(qwen_env.chat_requests) == 6
    kept = records(job.outputs)
    assert len(kept) == 3  # both attempts of row a, then row b
    kept_usage = dict(zip(USAGE, kept[0]["usage"], strict=True))
    assert kept_usage["completion_tokens"] < done.attrs["usage"]["completion_tokens"] / 2
    grid = p.compare_mode.comparison
    assert grid is not None
    expected = [p.runs[0].response.text, *(r.text for r in grid.responses)]
    assert [r["text"] for r in records(shown.outputs)] == expected
    saved = notebook(tmp_path / "job.ipynb", job.outputs, shown.outputs)

    qwen_env.stop()
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    magic(ip, f"replay only {saved}")
    with capture_output():
        again = qm.apply(frame, "Describe {animal}.", schema="name, legs int", concurrency=1)
        q = run_and_compare(qm.panel("Name a sea.", temperature=0.4))
    regrid = q.compare_mode.comparison
    assert regrid is not None and all(r.replayed for r in regrid.responses)
    assert [r.text for r in regrid.responses] == [r.text for r in grid.responses]
    pd.testing.assert_frame_equal(again, done)
    assert again.attrs["usage"] == done.attrs["usage"]  # each attempt replays its own tokens
    assert q.runs[0].response.replayed and q.runs[0].response.text == p.runs[0].response.text
