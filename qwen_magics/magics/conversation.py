"""The current conversation of ``%%qwen -c``: a system prompt and the user and assistant turns.

As in simonw/llm, a cell without ``-c`` starts a new conversation and ``-c`` continues it. Only the
answers' text is sent back; reasoning never is (DashScope does not want it, and it costs tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api.render import escape_text

__all__ = ["Conversation"]


@dataclass
class Conversation:
    system: str | None = None
    turns: list[dict[str, str]] = field(default_factory=list)
    model: str | None = None

    def __bool__(self) -> bool:
        return bool(self.turns)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The earlier turns, as messages to send before the next prompt."""
        return [dict(t) for t in self.turns]

    def add(self, prompt: str, answer: str, *, model: str | None = None) -> None:
        self.turns.append({"role": "user", "content": prompt})
        self.turns.append({"role": "assistant", "content": answer})
        if model:
            self.model = model

    def record(
        self, prompt: str, answer: str, *, system: str | None, continued: bool, model: str | None
    ) -> None:
        """A cell's exchange: it continues this conversation (``-c``) or starts a new one. An answer
        with no text (stopped before the first word) changes nothing."""
        if not answer:
            return
        if not continued:
            self.reset()
        if system is not None:
            self.system = system
        self.add(prompt, answer, model=model)

    def reset(self) -> None:
        self.system = None
        self.turns.clear()
        self.model = None

    # -- showing it ---------------------------------------------------------------------------
    def plain(self) -> str:
        if not self.turns:
            return "No conversation yet: a %%qwen cell starts one; %%qwen -c continues it."
        lines = [
            f"Conversation · {len(self.turns) // 2} turn(s)" + (f" · {self.model}" if self.model else "")
        ]
        if self.system:
            lines.append(f"system: {self.system}")
        for turn in self.turns:
            who = "you" if turn["role"] == "user" else "qwen"
            lines.append(f"{who}: {turn['content']}")
        return "\n\n".join(lines)

    def markdown(self) -> str:
        if not self.turns:
            return "*" + escape_text(self.plain()) + "*"
        head = f"**Conversation** · {len(self.turns) // 2} turn(s)"
        if self.model:
            head += f" · {escape_text(self.model)}"
        out = [head]
        if self.system:
            out.append(f"> **system:** {_quote(escape_text(self.system, markdown=True))}")
        for turn in self.turns:
            if turn["role"] == "user":  # what was typed; an answer is Markdown as the model wrote it
                out.append(f"> **you:** {_quote(escape_text(turn['content'], markdown=True))}")
            else:
                out.append(f"> **qwen:** {_quote(turn['content'])}")
        return "\n\n".join(out)

    def bundle(self) -> dict[str, str]:
        return {"text/markdown": self.markdown(), "text/plain": self.plain()}


def _quote(text: str) -> str:
    """Keep a multi-line turn inside its block quote."""
    return text.strip().replace("\n", "\n> ")
