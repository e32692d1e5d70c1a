"""Each byte sent about once: finished Markdown blocks frozen into their own outputs, the tail redrawn."""

from __future__ import annotations

import time
from collections.abc import Iterator

from IPython.utils.capture import capture_output

from qwen_magics.display.blocks import settled
from qwen_magics.emulator import Emulator
from qwen_magics.emulator.answers import SimpleGenerator, split_tokens

from .outputs import rendered, rendered_markdown, sent_bytes

ANSWER = """# Primes

A prime number has exactly two divisors: one and itself. The first few are 2, 3, 5 and 7.

- 2 is the only even prime
- 3 comes next

  an indented line that belongs to the item above

- 5 is in the same list

```python
def is_prime(n):

    return n > 1 and all(n % d for d in range(2, n))
```

| n | prime |
|---|-------|
| 4 | no    |

$$
x^2

y^2
$$

That is all there is to it, and the last paragraph stays open until the stream ends.
"""


def test_cuts_fall_only_between_top_level_blocks() -> None:
    blocks, start = [], 0
    for end in range(len(ANSWER) + 1):  # as it streams, one character at a time
        cut = settled(ANSWER[:end], start)
        if cut > start:
            blocks.append(ANSWER[start:cut])
            start = cut
    blocks.append(ANSWER[start:])
    assert "".join(blocks) == ANSWER
    assert [b.split("\n", 1)[0] for b in blocks] == [
        "# Primes",
        "A prime number has exactly two divisors: one and itself. The first few are 2, 3, 5 and 7.",
        "- 2 is the only even prime",  # the list stays whole, its indented line included
        "```python",  # the blank line inside the fence is not a cut
        "| n | prime |",
        "$$",  # nor the one inside display math
        "That is all there is to it, and the last paragraph stays open until the stream ends.",
    ]


def test_the_open_last_line_never_moves_a_cut() -> None:
    assert settled("First paragraph.") == 0
    assert settled("First paragraph.\n\n") == len("First paragraph.\n\n")  # a paragraph ends there
    assert settled("- one\n\n- tw") == 0  # a list may go on: its next line must be complete
    assert settled("- one\n\n  more\n\nAfter.\n") == len("- one\n\n  more\n\n")
    assert settled("```\ncode\n\nmore") == 0  # an unclosed fence holds everything
    assert settled("1. one\n\n2. two\n\nAfter.\n") == len("1. one\n\n2. two\n\n")


class Markdown(SimpleGenerator):
    """Streams a fixed Markdown answer, token by token."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def answer(self, prompt: str, **kw: object) -> Iterator[str]:
        yield from split_tokens(self.text)


def long_answer(paragraphs: int) -> str:
    sentence = "Streaming sends each finished paragraph to the browser once and redraws only the open one."
    return "\n\n".join(f"{i}. {sentence}" if i % 5 == 0 else sentence * 3 for i in range(paragraphs))


def test_a_long_answer_sends_each_byte_about_once_and_renders_the_same(ip, qwen_env: Emulator) -> None:
    text = long_answer(40)
    qwen_env.generator = Markdown(text)
    qwen_env.token_delay = 0.0005  # about 2,000 tokens a second
    started = time.perf_counter()
    with capture_output() as cap:
        ip.run_cell_magic("qwen", "--no-thinking --max-tokens 8000", "write a long answer")
    took = time.perf_counter() - started
    response = ip.user_ns["_qwen"]
    assert response.text == text
    outputs = rendered(cap.outputs)
    assert len(outputs) > 5, "finished blocks were not frozen into outputs of their own"
    final = rendered_markdown(cap.outputs)
    assert final.rsplit("\n\n<sub>", 1)[0] == text  # the blocks join back to the exact answer
    # the plain fallback is whole in the last output (the record points into it), once
    assert outputs[-1]["text/plain"].startswith(text) and all("text/plain" not in b for b in outputs[:-1])
    assert sent_bytes(cap.outputs) < 3 * len(text.encode())  # today's whole-answer redraws: ~50x here
    assert len(cap.outputs) <= 15 * (took + 1)


def test_a_thinking_answer_folds_its_reasoning_once_above_the_frozen_blocks(ip, qwen_env: Emulator) -> None:
    text = long_answer(8)
    qwen_env.generator = Markdown(text)
    qwen_env.token_delay = 0.002
    with capture_output() as cap:
        ip.run_cell_magic("qwen", "--thinking", "think, then answer")
    outputs = rendered(cap.outputs)
    assert outputs[0]["text/markdown"].startswith("<details class='qwen-thinking'>")
    assert sum("qwen-thinking" in b["text/markdown"] for b in outputs) == 1
    assert rendered_markdown(cap.outputs).count(ip.user_ns["_qwen"].reasoning) == 1  # drawn once, folded
    assert rendered_markdown(cap.outputs).split("</details>\n\n", 1)[1].rsplit("\n\n<sub>", 1)[0] == text
