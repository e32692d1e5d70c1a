"""compare(): a grid of settings on one prompt, run concurrently against the emulator, shown live."""

from __future__ import annotations

import asyncio
import html
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from IPython.utils.capture import capture_output

from qwen_magics import BadRequestError, ParameterError, Retry, ServerError, StreamInterrupted
from qwen_magics.comparison.compare import COMPARE_RETRY, Cell, Comparison, compare, parse_grid
from qwen_magics.comparison.diversity import diversity, similarity, word_diff_html
from qwen_magics.comparison.grid import LIVE_CELL_CHARS, grid_rows
from qwen_magics.comparison.gridspec import expand
from qwen_magics.emulator import Emulator
from qwen_magics.emulator.answers import SimpleGenerator

from .conftest import TEST_KEY, open_connections
from .kernels import kernel_env, press_stop, run, running_kernel
from .outputs import rendered
from .waiting import CtrlC

PROMPT = "Name a colour"


def _sent(emulator: Emulator, name: str) -> Counter:
    return Counter(r.params.get(name) for r in emulator.chat_requests)


# -- the grid -------------------------------------------------------------------------------------
def test_cross_product_gives_one_cell_per_combination_named_by_what_varies(qwen_env: Emulator) -> None:
    c = compare(PROMPT, temperature=[0.1, 0.9], top_p=[0.7, 0.95], max_tokens=60, show=False)
    assert c.labels == [
        "temperature=0.1, top_p=0.7",
        "temperature=0.1, top_p=0.95",
        "temperature=0.9, top_p=0.7",
        "temperature=0.9, top_p=0.95",
    ]
    assert [cell.settings for cell in c] == [
        {"temperature": t, "top_p": p, "max_tokens": 60} for t in (0.1, 0.9) for p in (0.7, 0.95)
    ]
    assert c.shared == {"max_tokens": 60}
    assert {r.params["max_tokens"] for r in qwen_env.chat_requests} == {60}
    assert c["temperature=0.9, top_p=0.7"] is c[2]
    assert all(f"at temperature {cell.settings['temperature']}" in cell.text for cell in c)


def test_request_log_shows_each_setting_once_per_sample(qwen_env: Emulator) -> None:
    c = compare(PROMPT, temperature=[0.2, 0.8], thinking=[True, False], samples=3, show=False)
    sent = Counter((r.params["temperature"], r.params["enable_thinking"]) for r in qwen_env.chat_requests)
    assert sent == {(t, k): 3 for t in (0.2, 0.8) for k in (True, False)}
    assert all(r.status == 200 for r in qwen_env.chat_requests)
    assert len(c.responses) == 12 and all(r.error is None for r in c.responses)
    assert [cell.label for cell in c][:2] == ["temperature=0.2, thinking=on", "temperature=0.2, thinking=off"]


def test_configs_give_exactly_the_listed_cells(qwen_env: Emulator) -> None:
    c = compare(
        PROMPT,
        configs=[{"temperature": 0.2}, {"model": "qwen-plus", "thinking": True}, {}],
        max_tokens=40,
        show=False,
    )
    assert c.labels == ["temperature=0.2", "qwen-plus, thinking=on", "qwen3.6-plus"]
    bodies = [r.params for r in qwen_env.chat_requests]
    assert len(bodies) == 3 and all(b["max_tokens"] == 40 for b in bodies)
    assert sorted(b["model"] for b in bodies) == ["qwen-plus", "qwen3.6-plus", "qwen3.6-plus"]
    assert [cell.model for cell in c] == ["qwen3.6-plus", "qwen-plus", "qwen3.6-plus"]


def test_labels_name_the_cells(qwen_env: Emulator) -> None:
    c = compare(PROMPT, temperature=[0.1, 1.2], labels=["careful", "wild"], show=False)
    assert c.labels == ["careful", "wild"]
    assert "temperature=1.2" in c._repr_html_()  # the settings still head the cell under its label
    assert list(c.df["label"]) == ["careful", "wild"]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"temprature": [0.1, 0.9]}, TypeError, "unknown parameter 'temprature'"),
        ({"stream": False}, TypeError, "unknown parameter 'stream'"),
        ({"temperature": []}, ValueError, "no value"),
        ({"samples": 0}, ValueError, "samples must be a whole number"),
        ({"concurrency": 2.5}, ValueError, "concurrency must be a whole number"),
        ({"temperature": [0.1, 0.2], "labels": ["one"]}, ValueError, "one label per cell"),
        ({"temperature": [0.1, 0.2], "labels": ["x", "x"]}, ValueError, "distinct"),
        ({"configs": [{"top_p": 0.5}], "temperature": [0.1, 0.2]}, ValueError, "put them in the configs"),
        ({"configs": [{"temperature": [0.1, 0.2]}]}, ValueError, "one config per value"),
        ({"configs": [{"base_url": "http://x"}]}, TypeError, "the same for every cell"),
        ({"configs": []}, TypeError, "non-empty list"),
    ],
)
def test_mistakes_in_compares_own_arguments_raise_before_anything_is_sent(
    qwen_env: Emulator, kwargs: dict, error: type, words: str
) -> None:
    with pytest.raises(error, match=words):
        compare(PROMPT, show=False, **kwargs)
    assert qwen_env.chat_requests == []


def test_an_empty_prompt_raises(qwen_env: Emulator) -> None:
    with pytest.raises(ParameterError, match="prompt is empty"):
        compare("  ", temperature=[0.1, 0.9], show=False)


def test_a_list_of_strings_is_one_stop_setting_and_a_list_of_lists_several(qwen_env: Emulator) -> None:
    one = compare(PROMPT, stop=["colour", "answer"], show=False)
    assert len(one) == 1 and one[0].settings["stop"] == ["colour", "answer"]
    several = compare(PROMPT, stop=[["colour"], ["answer"]], show=False)
    assert [cell.settings["stop"] for cell in several] == [["colour"], ["answer"]]


# -- one cell fails, the others go on ---------------------------------------------------------------
def test_a_400_stays_in_its_cell_and_the_others_answer(qwen_env: Emulator) -> None:
    qwen_env.add_fault("status", status=400, times=1)
    c = compare(PROMPT, temperature=[0.1, 0.5, 0.9], concurrency=1, show=False)
    first, *others = c
    assert isinstance(first.response.error, BadRequestError) and first.text == ""
    assert all(cell.response.error is None and cell.text for cell in others)
    html = c._repr_html_()
    assert "failed" in html and "data_inspection_failed" in html
    assert c.df["error"].notna().tolist() == [True, False, False]


def test_a_setting_out_of_range_is_refused_naming_its_cell_and_nothing_is_sent(qwen_env: Emulator) -> None:
    # the same checks as one request, made for every cell before any is sent (it used to fail its cell)
    with pytest.raises(ParameterError, match=r'^the cell "temperature=2.5": temperature must be in \[0, 2\)'):
        compare(PROMPT, temperature=[0.5, 2.5], thinking=[False], samples=2, show=False)
    assert qwen_env.chat_requests == []


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        (
            {"temperature": [5, 0.2, 7]},
            'the cell "temperature=5": temperature must be in [0, 2) (DashScope\'s range); got 5. '
            'The cell "temperature=7": temperature must be in [0, 2) (DashScope\'s range); got 7. '
            "Nothing was sent",
        ),
        (
            {"model": ["qwen-plus", "qwq-plus"], "thinking": False},
            'the cell "qwq-plus": qwq-plus always thinks; thinking cannot be turned off; nothing was sent',
        ),
        (
            {"configs": [{"budget": 50}, {"budget": 10**6}], "thinking": True, "model": "qwen3.5-flash"},
            'the cell "budget=1000000": budget must be in (0, 81920] for qwen3.5-flash',
        ),
        (
            {"top_p": [0.5, 0.9], "temperature": 5},
            'the cells "top_p=0.5", "top_p=0.9": temperature must be in [0, 2)',
        ),
    ],
)
def test_every_cell_is_checked_before_any_is_sent(qwen_env: Emulator, kwargs: dict, says: str) -> None:
    with pytest.raises(ParameterError) as err:
        compare(PROMPT, show=False, **kwargs)
    assert str(err.value).startswith(says) and err.value.param == "grid"
    assert qwen_env.chat_requests == []


def test_exhausted_retries_fail_one_cell(qwen_env: Emulator) -> None:
    qwen_env.add_fault("status", status=503, times=2)
    c = compare(PROMPT, top_p=[0.5, 0.9], concurrency=1, retry=Retry(attempts=2, backoff=0.01), show=False)
    assert isinstance(c[0].response.error, ServerError)
    assert c[1].response.error is None and c[1].text
    assert [r.status for r in qwen_env.chat_requests] == [503, 503, 200]


# -- samples and diversity --------------------------------------------------------------------------
def test_samples_show_distinct_answers_with_counts_and_diversity(qwen_env: Emulator) -> None:
    for text in ("Red.", "Blue.", "Red.", "Red."):
        qwen_env.queue_reply(text)
    c = compare(PROMPT, samples=4, concurrency=1, thinking=False, show=False)
    cell = c[0]
    assert cell.distinct() == [("Red.", 3), ("Blue.", 1)]
    d = cell.diversity()
    assert d is not None and d.distinct == 2 and d.distinct_share == 0.5
    assert d.similarity == pytest.approx(0.5)  # 3 identical pairs (1.0) and 3 unrelated pairs (0.0)
    html = c._repr_html_()
    assert "×3" in html and "×1" in html and "2 distinct of 4 (50%)" in html


def test_the_simple_generator_gives_one_distinct_answer_per_setting(qwen_env: Emulator) -> None:
    c = compare(PROMPT, temperature=[0.3, 1.3], samples=3, show=False)
    for cell in c:
        assert len(cell.distinct()) == 1 and cell.distinct()[0][1] == 3
        assert cell.diversity().similarity == 1.0  # type: ignore[union-attr]
    assert similarity(c[0].text, c[1].text) < 1.0


def test_a_higher_temperature_gives_more_distinct_answers(clean_env: None) -> None:
    with Emulator(generator="lm", seed=7) as emu:
        c = compare(
            "Tell me about the sea in one sentence.",
            temperature=[0.1, 1.5],
            thinking=False,
            samples=8,
            api_key=TEST_KEY,
            base_url=emu.base_url,
            show=False,
        )
    low, high = (cell.diversity() for cell in c)
    assert low is not None and high is not None and low.answers == high.answers == 8
    assert high.distinct > low.distinct
    assert high.similarity is not None and low.similarity is not None
    assert high.similarity < low.similarity


def test_diversity_figures() -> None:
    assert diversity([]) is None
    one = diversity(["a b c"])
    assert one is not None and one.similarity is None and one.distinct_share == 1.0
    same = diversity(["a b c", " a  b c ", "a b c"])
    assert same is not None and same.distinct == 1 and same.similarity == 1.0
    assert similarity("the sky is blue", "the sky is grey") == pytest.approx(0.75)


# -- word diff --------------------------------------------------------------------------------------
def test_word_diff_marks_only_the_words_not_in_the_reference() -> None:
    out = word_diff_html("The sky is <grey> today.", "The sky is blue.")
    assert out.count("<mark") == 2 and "&lt;grey&gt;</mark>" in out and "today.</mark>" in out
    assert out.startswith("<p>The sky is ")


def test_the_grid_renders_answers_as_markdown_and_the_diff_marks_their_prose(qwen_env: Emulator) -> None:
    qwen_env.queue_reply(
        "Sharks:\n\n- The shark is a fish.\n- It has **no** bones.\n\n```\nx = 1\n```\n<b>raw</b>"
    )
    qwen_env.queue_reply(
        "Sharks:\n\n- The shark is a fish.\n- It has **soft** bones.\n\n```\nx = 2\n```\n<b>raw</b>"
    )
    c = compare(PROMPT, temperature=[0.1, 0.9], concurrency=1, thinking=False, show=False)
    grid = c._repr_html_()
    assert (
        "<li>The shark is a fish.</li>" in grid and "<strong>no</strong>" in grid
    )  # as a %%qwen cell shows it
    assert (
        "<pre><code>x = 1\n</code></pre>" in grid and "&lt;b&gt;raw&lt;/b&gt;" in grid
    )  # raw HTML stays text
    assert "- The shark" not in grid
    marked = c.show_diff()._repr_html_()
    assert marked.count("<mark") == 1 and "soft</mark></strong>" in marked  # code is not compared


def test_highlighting_marks_what_differs_from_the_first_column(qwen_env: Emulator) -> None:
    qwen_env.queue_reply("The sky is blue.")
    qwen_env.queue_reply("The sky is grey.")
    c = compare(PROMPT, temperature=[0.1, 0.9], concurrency=1, thinking=False, show=False)
    assert "<mark" not in c._repr_html_()
    c.show_diff()
    html = c._repr_html_()
    assert html.count("<mark") == 1 and "grey.</mark>" in html
    assert "marked: words not in the first column" in html
    c.show_diff(False)
    assert "<mark" not in c._repr_html_()


# -- the DataFrame and the sequence ---------------------------------------------------------------
def test_dataframe_has_one_row_per_setting_and_sample(qwen_env: Emulator) -> None:
    c = compare(PROMPT, temperature=[0.1, 0.9], thinking=[True, False], samples=2, show=False)
    df = c.df
    assert list(df.columns) == [
        "label", "sample", "model", "temperature", "thinking", "text", "reasoning", "prompt_tokens",
        "completion_tokens", "reasoning_tokens", "ttft", "elapsed", "tokens_per_second", "cost", "error",
    ]  # fmt: skip
    assert len(df) == 8
    assert list(df["sample"]) == [0, 1] * 4
    assert set(df["model"]) == {"qwen3.6-plus"}
    assert (df["completion_tokens"] > 0).all() and (df["prompt_tokens"] > 0).all()
    thinking = df[df["thinking"]]
    assert (thinking["reasoning_tokens"] > 0).all() and thinking["reasoning"].str.len().gt(0).all()
    assert (df[~df["thinking"]]["reasoning_tokens"] == 0).all()
    assert df["error"].isna().all() and df["elapsed"].gt(0).all() and df["cost"].gt(0).all()
    assert list(df["text"]) == [r.text for r in c.responses]
    assert "temperature" in df.to_csv()


# -- concurrency and backoff ------------------------------------------------------------------------
def test_settings_run_concurrently_up_to_the_limit(qwen_env: Emulator) -> None:
    qwen_env.latency = 0.3
    c = compare(PROMPT, temperature=[0.1 * i for i in range(8)], concurrency=8, show=False)
    assert all(r.error is None for r in c.responses)
    arrivals = sorted(r.at for r in qwen_env.chat_requests)
    # all eight in flight at once: the last arrived while the first was still held for its 0.3 s
    # (bench/compare_scaling.py measures the wall time against asking one after another)
    assert arrivals[-1] - arrivals[0] < 0.3, f"arrivals spread over {arrivals[-1] - arrivals[0]:.2f}s"

    qwen_env.reset()
    started = time.perf_counter()
    compare(PROMPT, temperature=[0.1 * i for i in range(8)], concurrency=2, show=False)
    wall = time.perf_counter() - started
    assert wall >= 4 * 0.3 - 0.05, f"concurrency 2 must run in four waves; took {wall:.2f}s"
    arrivals = sorted(r.at for r in qwen_env.chat_requests)
    for i in range(2, 8):  # never a third request while two are in flight
        assert arrivals[i] - arrivals[i - 2] >= 0.25


def test_a_429_pauses_the_whole_comparison(qwen_env: Emulator) -> None:
    qwen_env.latency = 0.2
    qwen_env.add_fault("status", status=429, times=1)
    c = compare(
        PROMPT,
        temperature=[0.1 * i for i in range(6)],
        concurrency=2,
        retry=Retry(attempts=3, backoff=0.5, jitter=0.0),
        show=False,
    )
    assert all(r.error is None and r.text for r in c.responses)
    log = sorted(qwen_env.chat_requests, key=lambda r: r.at)
    limited = next(r for r in log if r.status == 429)
    later = log[2:]  # everything after the first two requests, which went out together
    assert len(later) == 5
    for record in later:  # the other slot's next request waited for the shared pause too
        assert record.at - limited.at >= 0.45, record.params
    assert Counter(r.params["temperature"] for r in log if r.status == 200) == {0.1 * i: 1 for i in range(6)}


def test_compare_retry_starts_soon_and_backs_off() -> None:
    assert COMPARE_RETRY.delay(1) <= 0.25 and COMPARE_RETRY.attempts >= 5
    assert COMPARE_RETRY.delay(5) >= 2.0


# -- where it runs ------------------------------------------------------------------------------------
def test_compare_works_while_an_event_loop_is_running(qwen_env: Emulator) -> None:
    async def cell() -> Comparison:
        assert asyncio.get_running_loop().is_running()
        return compare(PROMPT, temperature=[0.2, 0.7], show=False)

    c = asyncio.run(cell())
    assert c.done and all(cell.text for cell in c)


def test_compare_in_a_shell_whose_loop_is_running(shell) -> None:  # type: ignore[no-untyped-def]
    with capture_output() as cap:
        result = shell.run_cell(
            "import asyncio, qwen_magics\n"
            "await asyncio.sleep(0)\n"
            "running = asyncio.get_running_loop().is_running()\n"
            "c = qwen_magics.compare('Name a colour', temperature=[0.2, 0.7])\n"
        )
    result.raise_error()
    c = shell.user_ns["c"]
    assert shell.user_ns["running"] is True
    assert c.done and all("You asked: Name a colour" in cell.text for cell in c)
    assert any("text/html" in o.data and "qwen-compare" in o.data["text/html"] for o in cap.outputs)


def test_ctrl_c_stops_every_cell_and_keeps_partial_answers(clean_env: None) -> None:
    grids: list[str] = []

    def both_answering() -> bool:  # the first two cells stream, the third waits its turn
        return bool(grids) and grids[-1].count(">answering<") == 2

    with (
        Emulator(generator=SimpleGenerator(length=80), token_delay=0.02, api_key=TEST_KEY) as emu,
        CtrlC(both_answering, what="two cells to stream") as ctrl_c,
    ):
        c = compare(
            PROMPT,
            temperature=[0.1, 0.5, 0.9],
            concurrency=2,
            thinking=False,
            api_key=TEST_KEY,
            base_url=emu.base_url,
            show=False,
            publish=lambda bundle, update=False: grids.append(bundle["text/html"]),
        )
        ended = time.perf_counter()
        time.sleep(0.1)  # not a wait: a third request sent at the last moment would be logged by now
        sent = len(emu.chat_requests)
    stopped_after = ended - ctrl_c.pressed_at
    # the rest of a full answer would take over a second; stopping takes milliseconds
    assert c.interrupted and stopped_after < 1.0, f"compare returned {stopped_after:.2f}s after Ctrl-C"
    running, queued = c.responses[:2], c.responses[2]
    for r in running:
        assert r.interrupted and isinstance(r.error, StreamInterrupted)
        assert len(r.partial_text) > 0 and "word79" not in r.partial_text
    assert queued.interrupted and queued.partial_text == "" and "before it was sent" in str(queued.error)
    assert sent == 2
    assert "interrupted" in repr(c) and c.df["text"].str.len().gt(0).sum() == 2


def test_interrupted_comparison_df_says_token_counts_are_unknown_not_zero(clean_env: None) -> None:
    grids: list[str] = []
    with (
        Emulator(generator=SimpleGenerator(length=80), token_delay=0.02, api_key=TEST_KEY) as emu,
        CtrlC(lambda: bool(grids) and ">answering<" in grids[-1], what="a cell to stream"),
    ):
        c = compare(
            PROMPT,
            temperature=[0.1, 0.9],
            samples=1,
            thinking=False,
            api_key=TEST_KEY,
            base_url=emu.base_url,
            show=False,
            publish=lambda bundle, update=False: grids.append(bundle["text/html"]),
        )
    df = c.df
    assert c.interrupted and df["text"].str.len().gt(0).any()  # text arrived, usage never did
    stopped = df[df["error"].notna()]
    assert len(stopped) and stopped["completion_tokens"].isna().all() and stopped["cost"].isna().all()
    assert str(df["completion_tokens"].dtype) == "Int64"  # whole numbers around the gaps
    assert df["completion_tokens"].sum() == df["completion_tokens"].dropna().sum()  # sum skips unknowns
    # a finished comparison has every count, as integers
    with Emulator(generator="simple", api_key=TEST_KEY) as emu:
        whole = compare(PROMPT, temperature=[0.1, 0.9], api_key=TEST_KEY, base_url=emu.base_url, show=False)
    assert whole.df["completion_tokens"].notna().all() and whole.df["completion_tokens"].gt(0).all()
    assert whole.df["completion_tokens"].tolist() == [r.usage.completion_tokens for r in whole.responses]


def test_cancel_closes_every_open_stream_and_leaves_no_connection(qwen_env: Emulator) -> None:
    qwen_env.generator = SimpleGenerator(length=300)
    qwen_env.token_delay = 0.02  # about 6 s for a whole answer
    cancel = threading.Event()
    pressed: list[float] = []

    def press_once_all_stream() -> None:
        deadline = time.monotonic() + 10
        while len(qwen_env.chat_requests) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        pressed.append(time.time())
        cancel.set()

    presser = threading.Thread(target=press_once_all_stream)
    presser.start()
    c = compare(PROMPT, temperature=[0.1, 0.5, 0.9, 1.3], thinking=False, show=False, cancel=cancel)
    presser.join()
    assert c.interrupted and len(qwen_env.chat_requests) == 4
    assert all(r.interrupted and r.partial_text.startswith("You asked") for r in c.responses)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and (
        open_connections(qwen_env) or any(r.client_closed is None for r in qwen_env.chat_requests)
    ):
        time.sleep(0.02)
    closed = [r.client_closed for r in qwen_env.chat_requests]
    assert all(t is not None and t - pressed[0] < 0.5 for t in closed), closed  # every stream hung up
    assert open_connections(qwen_env) == []  # and nothing stays open, on either end


def test_failing_inside_the_run_thread_does_not_leave_it_running(qwen_env: Emulator) -> None:
    before = {t.name for t in threading.enumerate()}
    compare(PROMPT, temperature=[0.1, 0.2], show=False)
    assert "qwen-compare" not in {t.name for t in threading.enumerate()} - before


# -- the live display -------------------------------------------------------------------------------
def test_the_grid_streams_live_at_a_bounded_rate(shell, qwen_env: Emulator) -> None:  # type: ignore[no-untyped-def]
    qwen_env.generator = SimpleGenerator(length=60)
    qwen_env.token_delay = 0.02  # about 1.5 s: the grid redraws each second (a small grid's frames are cheap)
    with capture_output() as cap:
        shell.run_cell(
            "import qwen_magics\n"
            "c = qwen_magics.compare('Name a colour', temperature=[0.1, 0.9], thinking=False)\n"
            "c\n",
            store_history=True,
        )
    c = shell.user_ns["c"]
    grids = [o for o in cap.outputs if "qwen-compare" in o.data.get("text/html", "")]
    first, updates = grids[0], grids[1:]
    assert not first.update and all(o.update for o in updates)  # one display, then updates to it
    display_id = first.transient["display_id"]
    assert all(o.transient["display_id"] == display_id for o in updates)
    assert len(updates) >= 2, "the grid must redraw while the answers stream"
    assert len(updates) <= c.elapsed * 15 + 2, "no more than 15 redraws a second, plus the final one"
    assert any("answering" in o.data["text/html"] for o in updates[:-1])  # live, before the end
    final = updates[-1].data
    for cell in c:
        assert cell.text in final["text/plain"] and cell.response.footer() in final["text/plain"]
    assert "2 settings × 1 sample · done" in final["text/html"]
    assert sum(not o.update for o in grids) == 1  # `c` ends the cell: no second grid below the live one
    toggles = [o for o in cap.outputs if "application/vnd.jupyter.widget-view+json" in o.data]
    assert len(toggles) == 1

    with capture_output() as again:  # in a later cell, `c` shows the grid again
        shell.run_cell("c", store_history=True)
    shown = [o for o in again.outputs if "text/html" in o.data]  # and the toggle above is retired
    assert [o.update for o in shown] == [False] and shown[0].data["text/html"] == c._repr_html_()


def test_finished_rows_are_frozen_and_each_answer_is_sent_once(shell, qwen_env: Emulator) -> None:  # type: ignore[no-untyped-def]
    qwen_env.generator = SimpleGenerator(length=100)
    qwen_env.token_delay = 0.01  # about a second an answer; the second row waits for the first
    with capture_output() as cap:
        shell.run_cell(
            "import qwen_magics\n"
            "c = qwen_magics.compare('Name a colour', temperature=[0.1, 0.9], top_p=[0.6, 0.7, 0.8, 0.9],\n"
            "                        concurrency=4, thinking=False)\n"
        )
    c = shell.user_ns["c"]
    grids = [o for o in cap.outputs if "qwen-compare" in o.data.get("text/html", "")]
    first, last = rendered(grids)  # row 1 frozen into an output of its own; row 2 and the summary below
    answers = [html.escape(cell.text, quote=False) for cell in c]
    assert all(len(a) > LIVE_CELL_CHARS for a in answers)
    assert all(a in first["text/html"] for a in answers[:4]) and "every cell: " in first["text/html"]
    assert all(a in last["text/html"] for a in answers[4:]) and "done" not in first["text/html"]
    assert (
        "8 settings × 1 sample · done" in last["text/html"]
        and "<style>" not in first["text/html"] + last["text/html"]
    )
    assert "text/plain" not in first  # a frozen row is HTML alone: the closing output's text is whole
    for cell in c:
        assert cell.text in last["text/plain"]
        assert sum(html.escape(cell.text, quote=False) in o.data["text/html"] for o in grids) == 1  # once
    live = [o.data["text/html"] for o in grids[:-1] if "<style>" in o.data["text/html"]]
    assert len(live) >= 3 and any("answering" in frame for frame in live)  # live frames: tails, classes
    assert len(grids) <= c.elapsed * 15 + 2

    with capture_output() as cap:  # the toggle redraws the frozen output too
        c.show_diff(True)
    assert {o.transient["display_id"] for o in cap.outputs} == {o.transient["display_id"] for o in grids}
    assert "<mark" in cap.outputs[-1].data["text/html"]  # temperature 0.9's words differ from 0.1's


@pytest.mark.parametrize(
    ("grid", "rows"),
    [
        ({"temperature": [0.1, 0.5, 0.9]}, [3]),
        ({"temperature": [0.1, 0.3, 0.5, 0.7, 0.9, 1.1]}, [3, 3]),
        ({"temperature": [0.1, 0.3, 0.5, 0.7, 0.9]}, [3, 2]),
        ({"temperature": [0.1, 0.5, 0.9, 1.3], "top_p": [0.6, 0.7, 0.8, 0.9]}, [4, 4, 4, 4]),
        ({"temperature": [0.1, 0.5, 0.9], "top_p": [0.6, 0.7, 0.8]}, [3, 3, 3]),
        ({"temperature": [0.1, 0.9], "top_p": [0.5, 0.6, 0.7, 0.8, 0.9]}, [4, 4, 2]),
    ],
)
def test_grid_rows_put_the_last_parameter_across(grid: dict[str, list[float]], rows: list[int]) -> None:
    settings, _ = expand(grid)
    cells = [Cell(str(s), s, "qwen-plus", 1) for s in settings]
    assert [len(r) for r in grid_rows(cells)] == rows
    if len(grid) == 2 and len(rows) == len(grid["temperature"]):  # a row per temperature
        assert all(len({cells[i].settings["temperature"] for i in r}) == 1 for r in grid_rows(cells))


def test_the_toggle_highlights_differences_in_the_live_grid(shell, qwen_env: Emulator) -> None:  # type: ignore[no-untyped-def]
    qwen_env.queue_reply("The sky is blue.")
    qwen_env.queue_reply("The sky is grey.")
    with capture_output():
        shell.run_cell(
            "import qwen_magics\n"
            "c = qwen_magics.compare('Sky?', temperature=[0.1, 0.9], thinking=False, concurrency=1)\n"
        )
    c = shell.user_ns["c"]
    with capture_output() as cap:
        c.diff_toggle.value = True
    assert c.diff is True
    (update,) = cap.outputs
    assert update.update and "grey.</mark>" in update.data["text/html"]
    with capture_output() as cap:
        c.show_diff(False)
    assert c.diff_toggle.value is False and "<mark" not in cap.outputs[-1].data["text/html"]


def test_the_toggle_leaves_the_page_when_the_next_cell_runs(shell, qwen_env: Emulator) -> None:  # type: ignore[no-untyped-def]
    with capture_output() as cap:
        shell.run_cell("import qwen_magics\nc = qwen_magics.compare('Sky?', temperature=[0.1, 0.9])\n")
    c = shell.user_ns["c"]
    toggle = c.diff_toggle
    (shown,) = [o for o in cap.outputs if "application/vnd.jupyter.widget-view+json" in o.data]
    with capture_output() as cap:
        shell.run_cell("c.show_diff()")
    # a saved notebook keeps no widget whose model is gone once the kernel is: the output is emptied
    retired = [o for o in cap.outputs if o.transient.get("display_id") == shown.transient["display_id"]]
    assert [o.data for o in retired] == [{"text/plain": ""}] and toggle.comm is None
    assert c.diff_toggle is None and c.diff and "<mark" in cap.outputs[-1].data["text/html"]


def test_a_terminal_gets_each_cell_as_text(qwen_env: Emulator) -> None:
    code = (
        "from qwen_magics import compare\n"
        "compare('Name a colour', temperature=[0.1, 0.9], thinking=False, show=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "── temperature=0.1 ──" in out.stdout and "── temperature=0.9 ──" in out.stdout
    assert "at temperature 0.9." in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("2 settings × 1 sample · done")


def test_a_cell_cut_at_max_tokens_says_so_in_its_footer(qwen_env: Emulator) -> None:
    c = compare(PROMPT, max_tokens=[3, 200], thinking=False, show=False)
    cut, whole = c["max_tokens=3"], c["max_tokens=200"]
    assert cut.response is not None and cut.response.truncated
    assert whole.response is not None and not whole.response.truncated
    text, html_ = c.bundle()["text/plain"], c._repr_html_()
    assert text.count("stopped at max_tokens (3)") == 1 and "stopped at max_tokens (200)" not in text
    assert html_.count("stopped at max_tokens (3)") == 1


def test_compare_is_reachable_without_importing_heavy_modules() -> None:
    code = (
        "import sys, qwen_magics; qwen_magics.compare; qwen_magics.Comparison; "
        "print([m for m in ('pandas', 'ipywidgets', 'numpy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- parse_grid -------------------------------------------------------------------------------------
def test_parse_grid_reads_values_with_their_types() -> None:
    grid = parse_grid("temperature=0.1,0.9 top_p=0.7,0.95 thinking=on,off model=qwen-plus,qwen3.5-flash")
    assert grid == {
        "temperature": [0.1, 0.9],
        "top_p": [0.7, 0.95],
        "thinking": [True, False],
        "model": ["qwen-plus", "qwen3.5-flash"],
    }
    assert parse_grid("max_tokens = 50, 200  seed=1 budget=default") == {
        "max_tokens": [50, 200],
        "seed": [1],
        "budget": [None],
    }
    assert parse_grid("system=\"Be brief, please.\",'Rhyme.' response_format=text,json_object") == {
        "system": ["Be brief, please.", "Rhyme."],
        "response_format": [{"type": "text"}, {"type": "json_object"}],
    }
    assert isinstance(parse_grid("top_k=20")["top_k"][0], int)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("", "the grid is empty"),
        ("temperature", "not name=value1,value2"),
        ("temperature=hot", "'hot' is not a number"),
        ("top_k=2.5", "not a whole number"),
        ("tempreature=0.1", "unknown parameter 'tempreature'"),
        ("thinking=maybe", "write on or off"),
        ("temperature=0.1 temperature=0.2", "appears twice"),
        ("temperature=0.1,,0.2", "empty value"),
        ('system="unclosed', "unclosed quote"),
        ("response_format=json_schema", "text or json_object"),
    ],
)
def test_parse_grid_explains_a_bad_spec(spec: str, words: str) -> None:
    with pytest.raises(ParameterError, match=words):
        parse_grid(spec)


def test_a_parsed_grid_feeds_compare(qwen_env: Emulator) -> None:
    c = compare(PROMPT, show=False, **parse_grid("temperature=0.1,0.9 thinking=on,off"))
    assert len(c) == 4 and c.labels[0] == "temperature=0.1, thinking=on"


# -- in a real Jupyter kernel -----------------------------------------------------------------------
@pytest.mark.kernel
def test_a_saved_notebook_holds_the_final_grid_once(emulator: Emulator) -> None:
    import nbformat  # here, not at the top: collecting the in-process tests stays free of its 2 s import
    from nbclient import NotebookClient

    emulator.token_delay = 0.01
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from qwen_magics import compare\n"
            "c = compare('Name a colour', temperature=[0.1, 0.9], thinking=False)\n"
            "c"
        ),
        nbformat.v4.new_code_cell("print(c.df.shape, list(c.df['error'].isna()))"),
    ]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute(env=kernel_env(emulator))
    outputs = nb.cells[0].outputs
    grids = [o for o in outputs if "qwen-compare" in o.get("data", {}).get("text/html", "")]
    assert len(grids) == 1  # live updates replaced one display, and `c` did not add a second
    html = grids[0].data["text/html"]
    assert "2 settings × 1 sample · done" in html and "waiting" not in html
    assert "at temperature 0.1." in html and "at temperature 0.9." in html
    # the toggle went when the next cell ran: no widget is left to show "model not found" on reopening
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert nb.cells[1].outputs[0].text.strip() == "(2, 15) [True, True]"
    assert TEST_KEY not in nbformat.writes(nb)


@pytest.mark.kernel
def test_the_stop_button_stops_every_cell_in_a_kernel(emulator: Emulator) -> None:
    emulator.generator = SimpleGenerator(length=300)
    emulator.token_delay = 0.02  # about 6 s for a whole answer
    with running_kernel(kernel_env(emulator)) as (km, kc):
        msg_id = kc.execute(
            "from qwen_magics import compare\n"
            "c = compare('Tell a long story', temperature=[0.1, 0.9], thinking=False)"
        )
        while True:  # wait until both answers are on screen
            msg = kc.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") != msg_id or msg["msg_type"] != "update_display_data":
                continue
            if msg["content"]["data"]["text/html"].count(">answering<") == 2:
                break
        reply, final, took = press_stop(km, kc, msg_id)
        assert reply["status"] == "ok"  # no traceback
        # the rest of the answers would take seconds; this bound only catches a stop that waits for them
        assert final is not None and took < 3.0, f"the final grid came {took:.2f}s after the press"
        assert "interrupted: 0/2 finished" in final["text/html"]

        _, messages = run(kc, "print([(r.interrupted, len(r.partial_text)) for r in c.responses])")
        kept = eval("".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream"))
        full = len("".join(SimpleGenerator(length=300).answer("Tell a long story", temperature=0.1)))
        assert [k[0] for k in kept] == [True, True] and all(0 < n < full for _, n in kept)


def test_samples_with_a_seed_use_seed_plus_i_and_repeat_exactly(clean_env: None) -> None:
    def run(emu: Emulator) -> list[str]:
        c = compare(
            "Tell me about the sea in one sentence.",
            temperature=[0.1, 1.5],
            thinking=False,
            samples=5,
            seed=40,
            max_tokens=25,
            api_key=TEST_KEY,
            base_url=emu.base_url,
            show=False,
        )
        seeds = sorted((r.params["temperature"], r.body["seed"]) for r in emu.chat_requests)
        assert seeds == [(t, 40 + i) for t in (0.1, 1.5) for i in range(5)]
        assert list(c.df["seed"]) == [40, 41, 42, 43, 44] * 2
        assert len(c[1].distinct()) > len(c[0].distinct())
        return list(c.df["text"])

    with Emulator(generator="lm", api_key=TEST_KEY) as emu:
        first = run(emu)
    with Emulator(generator="lm", api_key=TEST_KEY) as emu:
        assert run(emu) == first
