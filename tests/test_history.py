"""The history: every answer of every feature in a real SQLite file, read back by ``%qwen log`` and
``qwen_magics.history``; a real shell, the emulator over HTTP, databases in tmp_path."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import qwen_magics as qm
from qwen_magics import historydb
from qwen_magics.api.record import fingerprint
from qwen_magics.emulator import Emulator
from qwen_magics.recall import parse_since

from .conftest import TEST_KEY
from .outputs import magic, rendered_markdown


def rows(path: Path) -> list[dict[str, Any]]:
    """Every row, oldest first, straight from the file."""
    assert historydb.flush(10)
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM answers ORDER BY id")]
    finally:
        con.close()


def test_every_feature_records_each_answer(ip: Any, history: Path) -> None:
    magic(ip, "-t 0.3 --no-thinking", "Why is the sea salty?")
    qm.ask("Name a moon of Jupiter.", thinking=False).complete()

    async def aask() -> None:
        await (await qm.aask("Name a moon of Saturn.", thinking=False)).acomplete()

    asyncio.run(aask())
    with capture_output():
        comparison = qm.compare("Name a colour.", temperature=[0.2, 0.8], samples=2, seed=1)
        frame = qm.apply(pd.DataFrame({"animal": ["cat", "owl"]}, index=["a", "b"]), "Describe {animal}.")
        qm.ask_json("A planet.", schema="name, moons int")
        p = qm.panel("Name a sea.", temperature=0.4)
    p.run_button.click()
    assert p.wait(10)

    found = rows(history)
    assert [r["prompt"] for r in found[:3]] == [
        "Why is the sea salty?",
        "Name a moon of Jupiter.",
        "Name a moon of Saturn.",
    ]
    compared = [r for r in found if r["source"] == "compare"]
    assert len(compared) == 4 and len({r["group_id"] for r in compared}) == 1
    assert sorted((r["label"], r["sample"]) for r in compared) == sorted(
        (c.label, i) for c in comparison for i in range(2)
    )
    assert len({r["fingerprint"] for r in compared}) == 4  # samples stay distinct
    applied = [r for r in found if r["source"] == "apply"]
    assert sorted(r["label"] for r in applied) == ["a", "b"] and len({r["group_id"] for r in applied}) == 1
    assert frame["_error"].isna().all()
    structured = [r for r in found if r["prompt"] == "A planet."]
    assert len(structured) == 1
    assert json.loads(structured[0]["schema"])["properties"].keys() == {"name", "moons"}
    assert json.loads(structured[0]["data"]) == qm.ask_json("A planet.", schema="name, moons int").data
    [panel_row] = [r for r in found if r["source"] == "panel"]
    assert panel_row["label"] == "run 1" and json.loads(panel_row["params"])["temperature"] == 0.4
    assert found[0]["cell"] == ip.execution_count  # the magics say which cell asked


def test_a_row_holds_the_request_and_the_answer_and_never_the_key(
    ip: Any, history: Path, qwen_env: Emulator
) -> None:
    cap = magic(ip, "-t 0.3 --max-tokens 200 -s 'Be brief.' -o r", "Why is the sea salty?")
    r = ip.user_ns["r"]
    [row] = rows(history)
    assert row["model"] == r.model and row["host"] == f"127.0.0.1:{qwen_env.port}" and row["region"] is None
    assert json.loads(row["messages"]) == r.messages
    assert json.loads(row["params"])["temperature"] == 0.3 and json.loads(row["params"])["max_tokens"] == 200
    assert (
        row["system"] == "Be brief." and row["text"] == r.text and row["reasoning"] == (r.reasoning or None)
    )
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        r.usage.prompt_tokens,
        r.usage.completion_tokens,
    )
    assert row["ttft"] == pytest.approx(r.ttft) and row["elapsed"] == pytest.approx(r.elapsed)
    assert row["cost"] == pytest.approx(r.cost) and row["finish_reason"] == "stop"
    assert row["request_id"] == r.request_id and row["incomplete"] == 0 and row["error"] is None
    assert row["fingerprint"] == fingerprint(r.request, row["host"])
    assert "Why is the sea salty?" in rendered_markdown(cap.outputs)
    stored = b"".join(p.read_bytes() for p in history.parent.iterdir())
    assert TEST_KEY.encode() not in stored and TEST_KEY[3:-4].encode() not in stored


def test_the_fingerprint_is_the_canonical_request_not_the_key(emulator: Emulator) -> None:
    request = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}
    host = "dashscope-intl.aliyuncs.com"
    same = {"temperature": 0.2, "messages": [{"role": "user", "content": "hi"}], "model": "qwen-plus"}
    assert fingerprint(request, host) == fingerprint(same, host)
    assert fingerprint(request, host) == fingerprint({**request, "stream": False}, host)
    assert fingerprint(request, host) != fingerprint(request, host, sample=1)
    assert fingerprint(request, host) != fingerprint({**request, "temperature": 0.3}, host)
    assert fingerprint(request, host) != fingerprint(request, "dashscope-us.aliyuncs.com")

    fingerprints = []
    for key in ("sk-one-key-0000000000", "sk-another-key-11111111"):
        emulator.api_key = key
        r = qm.ask("hi", thinking=False, api_key=key, base_url=emulator.base_url)
        fingerprints.append(fingerprint(r.complete().request, "h"))
    assert fingerprints[0] == fingerprints[1]


def test_the_folder_is_its_owners_and_the_file_too(ip: Any, history: Path) -> None:
    magic(ip, "--no-thinking", "hi")
    rows(history)
    assert stat.S_IMODE(history.parent.stat().st_mode) == 0o700
    for path in history.parent.iterdir():  # the database, its -wal and -shm
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_history_off_writes_nothing_and_the_trait_chooses_the_file(
    ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QWEN_HISTORY", "off")
    magic(ip, "--no-thinking", "hi")
    assert historydb.flush(10) and list(tmp_path.iterdir()) == []
    chosen = tmp_path / "chosen.db"
    ip.run_line_magic("config", f"QwenMagics.history = {str(chosen)!r}")
    magic(ip, "--no-thinking", "hello there")
    assert [r["prompt"] for r in rows(chosen)] == ["hello there"]
    ip.run_line_magic("config", "QwenMagics.history = 'off'")
    assert repr(qm.history) == "<History off (QWEN_HISTORY=off)>"
    assert "The history is off" in magic(ip, "log").outputs[0].data["text/plain"]
    other = tmp_path / "other.db"
    magic(ip, f"config history={other}")  # the same from %qwen config, where off stays a word
    magic(ip, "--no-thinking", "and again")
    assert [r["prompt"] for r in rows(other)] == ["and again"]
    magic(ip, "config history=off")
    magic(ip, "--no-thinking", "not this one")
    assert historydb.flush(10) and [r["prompt"] for r in rows(other)] == ["and again"]


def test_log_shows_newest_first_with_the_words_marked(ip: Any, history: Path) -> None:
    for prompt in ("Why is the sea salty?", "Name a colour.", "Is the Dead Sea saltier?"):
        magic(ip, "--no-thinking", prompt)
    out = magic(ip, "log").outputs[0].data
    plain = out["text/plain"].splitlines()
    assert plain[0].split() == ["id", "when", "model", "prompt", "answer", "tokens", "cost", "/", "state"]
    assert [line.split()[0] for line in plain[1:4]] == ["3", "2", "1"]

    out = magic(ip, "log -q sea").outputs[0].data
    assert "**Sea**" in out["text/markdown"] and "[sea]" in out["text/plain"]
    assert "colour" not in out["text/plain"] and "2 answers" in out["text/plain"]
    assert "1 answer," in magic(ip, "log -n 1").outputs[0].data["text/plain"]
    assert "No matching answers" in magic(ip, "log -m qwen-max").outputs[0].data["text/plain"]
    assert "3 answers" in magic(ip, "log --since 1h").outputs[0].data["text/plain"]


def test_log_since_takes_dates_and_times_ago_and_says_what_to_write() -> None:
    now = dt.datetime(2026, 12, 2, 15, 30).timestamp()
    assert parse_since("2026-12-01", now=now) == dt.datetime(2026, 12, 1).timestamp()
    assert parse_since("2026-12-01 14:00", now=now) == dt.datetime(2026, 12, 1, 14).timestamp()
    assert parse_since("1h", now=now) == now - 3600
    assert parse_since("30m", now=now) == now - 1800
    assert parse_since("2d", now=now) == now - 2 * 86400
    assert parse_since("yesterday", now=now) == dt.datetime(2026, 12, 1).timestamp()
    with pytest.raises(ValueError, match=r"write a date \(2026-12-01\).*30m, 1h, 2d.*yesterday"):
        parse_since("last tuesday")


def test_log_refuses_a_bad_since_in_one_line(ip: Any, history: Path) -> None:
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("qwen", "log --since soon")
    message = str(caught.value)
    assert message.startswith("%qwen log --since: could not read 'soon'; write a date (2026-12-01)")
    assert "\n" not in message


def test_get_brings_back_an_answer_that_displays_like_the_original(ip: Any, history: Path) -> None:
    magic(ip, "--thinking -o r", "Why is the sea salty?")
    original = ip.user_ns["r"]
    [row] = qm.history(q="salty").itertuples()
    back = qm.history.get(row.Index)
    assert (back.text, back.reasoning, back.usage, back.model) == (
        original.text,
        original.reasoning,
        original.usage,
        original.model,
    )
    assert back.ttft == original.ttft and back.elapsed == pytest.approx(original.elapsed, abs=0.01)
    assert back.footer().startswith(original.footer().rsplit(" · total", 1)[0])
    assert "from the history" in back._repr_markdown_() and original.text in back._repr_markdown_()
    with pytest.raises(qm.QwenError, match="no answer 99"):
        qm.history.get(99)


def test_delete_and_export(ip: Any, history: Path, tmp_path: Path) -> None:
    for prompt in ("Why is the sea salty?", "Name a colour.", "Name a moon."):
        magic(ip, "--no-thinking", prompt)
    df = qm.history()
    assert list(df["prompt"]) == ["Name a moon.", "Name a colour.", "Why is the sea salty?"]
    assert str(df["prompt_tokens"].dtype) == "Int64" and df["time"].dt.tz is not None

    exported = tmp_path / "answers.jsonl"
    assert qm.history.export(exported) == 3
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [line["prompt"] for line in lines] == ["Why is the sea salty?", "Name a colour.", "Name a moon."]
    assert lines[0]["messages"][-1] == {"role": "user", "content": "Why is the sea salty?"}
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600

    with pytest.raises(ValueError, match="say which answers"):
        qm.history.delete()
    assert qm.history.delete(q="colour") == 1
    assert qm.history.delete(int(df.index[0])) == 1
    assert list(qm.history()["prompt"]) == ["Why is the sea salty?"]
    assert qm.history(q="colour").empty  # the search index forgot it too
    assert qm.history.delete(all=True) == 1 and qm.history().empty


# -- reliability -----------------------------------------------------------------------------------
def warned_once(ip: Any, history: Path) -> str:
    """Two cells (one a comparison) with the database unwritable: both show their answers, and
    exactly one HistoryWarning says why."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = magic(ip, "--no-thinking", "Why is the sea salty?")
        second = magic(ip, '--no-thinking --compare "temperature=0.2,0.8"', "Name a colour.")
        assert historydb.flush(30)
    assert "You asked: Why is the sea salty?" in rendered_markdown(first.outputs)
    assert "Name a colour." in json.dumps([o.data for o in second.outputs])
    ours = [w for w in caught if issubclass(w.category, historydb.HistoryWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert str(history) in str(ours[0].message)
    return str(ours[0].message)


def test_a_locked_database_leaves_the_cell_working_with_one_warning(ip: Any, history: Path) -> None:
    magic(ip, "--no-thinking", "first")
    rows(history)
    holder = sqlite3.connect(history, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert "database is locked" in warned_once(ip, history)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_read_only_database_leaves_the_cell_working_with_one_warning(ip: Any, history: Path) -> None:
    import shutil
    import subprocess

    magic(ip, "--no-thinking", "first")
    rows(history)
    with sqlite3.connect(history) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in history.parent.iterdir():
        path.chmod(0o444)
    history.parent.chmod(0o555)
    immutable = os.geteuid() == 0  # root writes through file modes: make the file immutable instead
    if immutable:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: no way to make a file read-only")
        done = subprocess.run(["chattr", "+i", str(history)], capture_output=True)
        if done.returncode:
            pytest.skip(f"running as root and chattr +i failed: {done.stderr.decode().strip()}")
    try:
        assert "readonly" in warned_once(ip, history).replace("read-only", "readonly")
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(history)], check=True)
        history.parent.chmod(0o700)


def test_a_corrupt_database_leaves_the_cell_working_with_one_warning(ip: Any, history: Path) -> None:
    history.parent.mkdir()
    history.write_bytes(b"this is not a database, whatever it once was\n" * 200)
    assert "not a database" in warned_once(ip, history)
    assert history.read_bytes().startswith(b"this is not a database")  # left as it was found


CHILD = """
import os, sys, time
from pathlib import Path
from qwen_magics import historydb
from qwen_magics.api.client import Client
from qwen_magics.emulator import Emulator

name, count, start, path = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
with Emulator(generator="simple") as emu, Client(base_url=emu.base_url, api_key="sk-child") as client:
    client.ask("warm up", thinking=False).complete()  # not recorded: the history is still off
    os.environ["QWEN_HISTORY"] = path
    while not start.exists():
        time.sleep(0.001)
    for i in range(count):
        client.ask(f"{name} answer {i}", thinking=False).complete()
    assert historydb.flush(60)
"""


def test_four_processes_writing_at_once_lose_and_double_nothing(
    clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    path = tmp_path / "shared" / "history.db"
    start = tmp_path / "start"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "QWEN_HISTORY": "off"}
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, f"p{n}", "500", str(start), str(path)], env=env)
        for n in range(4)
    ]
    time.sleep(1.0)  # every child ready, then all at once
    start.touch()
    assert [child.wait(120) for child in children] == [0, 0, 0, 0]
    found = rows(path)
    prompts = [r["prompt"] for r in found]
    assert len(prompts) == 2000 and len(set(prompts)) == 2000
    assert set(prompts) == {f"p{n} answer {i}" for n in range(4) for i in range(500)}
    monkeypatch.setenv("QWEN_HISTORY", str(path))
    assert len(qm.history(q="p3", limit=None)) == 500
