"""ask_json(show=True) in a real IPython shell: live partial JSON with a record count, then the table."""

from __future__ import annotations

import json
import time

import pytest
from IPython.utils.capture import capture_output

from qwen_magics.emulator import Emulator
from qwen_magics.errors import StructuredOutputError
from qwen_magics.structured.ask import ask_json

PLANETS = {
    "planets": [
        {"name": n, "order": i + 1, "facts": {"type": "rocky"}}
        for i, n in enumerate(["Mercury", "Venus", "Earth", "Mars"])
    ]
}


def html_of(output) -> str:  # type: ignore[no-untyped-def]
    return output.data.get("text/html", "")


def test_show_streams_partial_json_with_a_record_count_then_a_dataframe(shell, qwen_env: Emulator) -> None:  # type: ignore[no-untyped-def]
    qwen_env.token_delay = 0.004
    qwen_env.queue_reply(json.dumps(PLANETS, indent=1))
    started = time.perf_counter()
    with capture_output() as cap:
        r = ask_json("list four planets as JSON", show=True)
    elapsed = time.perf_counter() - started
    outputs = cap.outputs
    assert outputs[0].update is False
    assert all(o.update for o in outputs[1:])
    assert len({o.transient["display_id"] for o in outputs}) == 1
    live = [html_of(o) for o in outputs[:-1]]
    counts = [int(s.split(" record")[0].rsplit("· ", 1)[-1]) for s in live if " record" in s]
    assert counts == sorted(counts) and counts[-1] == 4 and len(set(counts)) > 1  # it counted up
    assert any('"Venus"' in s for s in live)  # a quote needs no escape in <pre>
    assert len(outputs) <= 15 * elapsed + 4  # a bounded redraw rate, whatever the token rate
    final = html_of(outputs[-1])
    assert "dataframe" in final and "Mars" in final and "facts.type" in final
    assert "thinking off for JSON mode" in final
    assert "Mercury" in outputs[-1].data["text/plain"]
    assert len(r.data["planets"]) == 4


def test_show_pretty_prints_json_that_is_not_a_table(shell, qwen_env: Emulator) -> None:  # type: ignore[no-untyped-def]
    qwen_env.queue_reply('{"name": "Mars", "moons": {"count": 2, "names": ["Phobos", "Deimos"]}}')
    with capture_output() as cap:
        ask_json("Mars as JSON", show=True)
    final = html_of(cap.outputs[-1])
    assert "dataframe" not in final
    assert '<pre>{\n  "name": "Mars",' in final


def test_show_says_when_it_asks_again(shell, qwen_env: Emulator) -> None:  # type: ignore[no-untyped-def]
    qwen_env.queue_reply('{"name": "Mars", "moons": "two"}')
    with capture_output() as cap:
        r = ask_json("Describe Mars", schema="name, moons int", model="qwen-plus", show=True)
    assert r.json_attempts == 2
    assert any("asked again: the JSON does not follow the schema" in html_of(o) for o in cap.outputs)
    assert "2 attempts" in html_of(cap.outputs[-1])


def test_show_keeps_the_answer_on_screen_when_no_json_comes(shell, qwen_env: Emulator) -> None:  # type: ignore[no-untyped-def]
    qwen_env.queue_reply("Mars is red.")
    with capture_output() as cap, pytest.raises(StructuredOutputError):
        ask_json("Mars as JSON", retries=0, show=True)
    final = html_of(cap.outputs[-1])
    assert "Mars is red." in final and "not usable JSON" in final


def test_show_in_a_terminal_prints_the_table_once(qwen_env: Emulator) -> None:
    from qwen_magics import ask
    from qwen_magics.structured.ask import Attempts, plan
    from qwen_magics.structured.jsonview import JSONView

    qwen_env.queue_reply(json.dumps(PLANETS))
    p = plan("list planets as JSON")
    attempts = Attempts(p, 2)
    view = JSONView(rich=False)
    with capture_output() as cap:
        response = view.run(ask(p.prompt, **p.kw))
        assert attempts.take(response)
        view.show_result(response)
    assert cap.outputs == []
    assert cap.stdout.count("Mercury") == 1
    assert "facts.type" in cap.stdout
