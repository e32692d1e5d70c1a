"""Earlier cells in a prompt: {In[n]} their source, {Out[n]}, {_}, {_n} their output as shown."""

from __future__ import annotations

import matplotlib
from IPython.utils.capture import capture_output

from qwen_magics.emulator import Emulator

matplotlib.use("Agg")


def sent(ip, emulator: Emulator, body: str, line: str = "--no-thinking") -> object:  # type: ignore[no-untyped-def]
    emulator.reset()
    with capture_output():
        ip.run_cell_magic("qwen", line, body)
    (request,) = emulator.chat_requests
    return request.body["messages"][-1]["content"]


class Report:
    def _repr_markdown_(self) -> str:
        return "**total**: 42"

    def __repr__(self) -> str:
        return "<Report object>"


def cell(ip, source: str) -> int:  # type: ignore[no-untyped-def]
    with capture_output():
        ip.run_cell(source, store_history=True)
    return ip.execution_count - 1


def test_in_and_out_give_a_cells_source_and_what_it_showed(ip, qwen_env: Emulator) -> None:
    ip.user_ns["Report"] = Report
    n = cell(ip, "Report()")
    m = cell(ip, "{'a': 1, 'b': [1, 2]}")
    prompt = sent(ip, qwen_env, f"Source {{In[{n}]}}; shown {{Out[{n}]}}; dict {{_{m}}}; last {{_}}")
    assert prompt == (
        "Source Report(); shown **total**: 42; dict {'a': 1, 'b': [1, 2]}; last {'a': 1, 'b': [1, 2]}"
    )


def test_an_earlier_dataframe_is_the_whole_table(ip, qwen_env: Emulator) -> None:
    n = cell(ip, "import pandas as pd\npd.DataFrame({'x': range(300)})")
    prompt = sent(ip, qwen_env, f"{{Out[{n}]}}")
    assert isinstance(prompt, str) and prompt.count("\n") == 301 and "| 299 |" in prompt


def test_an_earlier_figure_or_plot_is_a_picture(ip, qwen_env: Emulator) -> None:
    n = cell(ip, "from matplotlib import pyplot as plt\nplt.plot([1, 2], [2, 1])")
    prompt = sent(ip, qwen_env, f"What does {{Out[{n}]}} show?", line="-m qwen3-vl-flash")
    assert isinstance(prompt, list)
    assert [p["type"] for p in prompt] == ["text", "image_url", "text"]
    assert prompt[1]["image_url"]["url"].startswith("data:image/png;base64,")
