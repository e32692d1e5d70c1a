"""The ``judge`` check: a Qwen model grades the answer against a rubric through structured output.

The judge asks for ``{"score": 0..1, "reason": "one line"}`` at temperature 0; its Result's score
is the grade, and it passes at its own ``threshold`` (0.5 by default), counting then in full toward
the answer's score. A judge that cannot answer (a 429 after the retries, no connection) is errored,
not failed. ``arun`` awaits the grade in an event loop (``aevaluate``, the comparison grid).
"""

from __future__ import annotations

from typing import Any

from ..api.response import Response
from ..errors import ParameterError
from .build import Missing, errored, filler, label, named, pass_mark
from .core import EPSILON, Case, Check, Result

__all__ = ["JUDGE_SCHEMA", "JUDGE_SYSTEM", "judge"]

JUDGE_SYSTEM = (
    "You grade an answer against a rubric. Give a score from 0 (does not meet the rubric at all) "
    "to 1 (fully meets it), and the reason in one short line."
)
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "grade",
    "properties": {
        "score": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "0 to 1: how well the answer meets the rubric",
        },
        "reason": {"type": "string", "description": "why, in one short line"},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}


def judge(
    rubric: str,
    model: str | None = None,
    threshold: float = 0.5,
    *,
    weight: float = 1.0,
    retries: int = 1,
    client: Any = None,
) -> Check:
    """Scores the answer as a Qwen model grades it against ``rubric``: structured output asks for
    ``{"score": 0..1, "reason": "one line"}`` at temperature 0, thinking off where the model allows;
    passes when the grade reaches ``threshold`` (then counting in full). ``model``: the judge
    (None: the configured model); ``retries``: re-asks for unusable JSON; ``client``: a ``Client``
    (for ``run``) or ``AsyncClient`` (for ``arun``) whose connections, retries and backoff to use.
    A judge that cannot answer (a 429 after the retries, no connection) makes the Result errored."""
    from ..api.client import AsyncClient, Client, ask
    from ..errors import QwenError
    from ..structured.ask import Attempts, Plan, plan
    from ..structured.ask import arun as arun_plan

    if not isinstance(rubric, str) or not rubric.strip():
        raise ParameterError(
            "judge", f"judge() takes a rubric, the text the answer is graded on; got {rubric!r}"
        )
    cut = pass_mark("judge", threshold)
    name = label("judge", rubric)
    if model is not None or cut != 0.5:
        name = (
            name[:-1]
            + (f", model={model!r}" if model is not None else "")
            + (f", {cut:g})" if cut != 0.5 else ")")
        )
    fill = filler(rubric)
    send = client.ask if isinstance(client, Client) else ask
    shared = client if isinstance(client, AsyncClient) else None

    def question(response: Response, case: Case) -> Plan:
        wanted = rubric if fill is None else fill(case)
        return plan(
            _judge_prompt(wanted, response),
            schema=JUDGE_SCHEMA,
            model=model,
            temperature=0,
            system=JUDGE_SYSTEM,
        )

    def grade(graded: Response) -> Result:
        data = graded.data if isinstance(graded.data, dict) else {}
        score = float(data.get("score", 0.0))
        reason = " ".join(str(data.get("reason") or "").split())[:200]
        return Result(name, score, score >= cut - EPSILON, reason)

    def run(response: Response, case: Case) -> Result:
        try:
            attempts = Attempts(question(response, case), retries)
            while True:
                graded = send(attempts.prompt, **attempts.kw).complete()
                if attempts.take(graded):
                    return grade(graded)
        except Missing as exc:
            return errored(name, str(exc))
        except QwenError as exc:
            return errored(name, f"the judge could not grade: {exc}")

    async def arun(response: Response, case: Case) -> Result:
        try:
            return grade(await arun_plan(question(response, case), retries, shared))
        except Missing as exc:
            return errored(name, str(exc))
        except QwenError as exc:
            return errored(name, f"the judge could not grade: {exc}")

    return named(name, run, weight, fill is not None, arun)


def _judge_prompt(rubric: str, response: Response) -> str:
    asked = [m.get("content") for m in response.messages if m.get("role") == "user"]
    question = asked[-1] if asked and isinstance(asked[-1], str) else None
    parts = [f"Rubric: {rubric}"]
    if question:
        parts.append(f"Question:\n{question}")
    parts.append(f"Answer:\n{response.text}")
    return "\n\n".join(parts)
