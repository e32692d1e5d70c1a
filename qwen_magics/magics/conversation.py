"""The current conversation of ``%%qwen -c``: a system prompt and the user and assistant turns.

As in simonw/llm, a cell without ``-c`` starts a new conversation and ``-c`` continues it. Only the
answers' text is sent back; reasoning never is (DashScope does not want it, and it costs tokens).
A stopped answer is kept as far as it got, marked partial in the history; a cell that kept no answer
at all (stopped while the model was thinking, or before the first token) leaves the conversation as
it was, and the next ``-c`` cell says what it continues instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api.render import escape_text
from ..images import text_of
from ..templating import Content

__all__ = ["Conversation"]


@dataclass
class Conversation:
    system: str | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)  # an answer cut short: "partial": True
    model: str | None = None
    unanswered: Content | None = None  # the prompt of the last cell, when it kept no answer

    def __bool__(self) -> bool:
        return bool(self.turns)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The earlier turns, as messages to send before the next prompt."""
        return [{"role": t["role"], "content": t["content"]} for t in self.turns]

    def add(self, prompt: Content, answer: str, *, model: str | None = None, partial: bool = False) -> None:
        self.turns.append({"role": "user", "content": prompt})
        self.turns.append({"role": "assistant", "content": answer, **({"partial": True} if partial else {})})
        if model:
            self.model = model

    def record(
        self,
        prompt: Content,
        answer: str,
        *,
        system: str | None,
        continued: bool,
        model: str | None,
        partial: bool = False,
    ) -> None:
        """A cell's exchange: it continues this conversation (``-c``) or starts a new one. A partial
        answer (stopped or cut) is kept as it is; a cell with no answer text changes nothing but
        ``unanswered``."""
        if not answer:
            self.unanswered = prompt
            return
        if not continued:
            self.reset()
        if system is not None:
            self.system = system
        self.add(prompt, answer, model=model, partial=partial)
        self.unanswered = None

    def continue_note(self) -> str | None:
        """What a ``-c`` cell should say when it cannot continue from the cell before it."""
        if self.unanswered is not None:
            cell = _short(self.unanswered)
            if self.turns:
                return f"-c continues from before {cell}: that cell kept no answer to send back"
            return f"-c has nothing to continue ({cell} kept no answer): this starts a new conversation"
        if not self.turns:
            return "-c has nothing to continue yet: this starts a new conversation"
        return None

    def reset(self) -> None:
        self.system = None
        self.turns.clear()
        self.model = None
        self.unanswered = None

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
            lines.append(f"{_who(turn)}: {text_of(turn['content'])}")
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
                typed = escape_text(text_of(turn["content"]), markdown=True)
                out.append(f"> **{_who(turn)}:** {_quote(typed)}")
            else:
                out.append(f"> **{_who(turn)}:** {_quote(turn['content'])}")
        return "\n\n".join(out)

    def bundle(self) -> dict[str, str]:
        return {"text/markdown": self.markdown(), "text/plain": self.plain()}


def _quote(text: str) -> str:
    """Keep a multi-line turn inside its block quote."""
    return text.strip().replace("\n", "\n> ")


def _who(turn: dict[str, Any]) -> str:
    if turn["role"] == "user":
        return "you"
    return "qwen (partial: stopped before the end)" if turn.get("partial") else "qwen"


def _short(prompt: Content) -> str:
    """A prompt named in a note: its first line, cut to 40 characters."""
    line = text_of(prompt).strip().split("\n", 1)[0]
    return repr(line if len(line) <= 40 else line[:39] + "…")
