"""Checks on what the answer cost: completion tokens, the time it took, the dollars it spent.

Each reads the finished Response's usage, elapsed time or estimated cost; when the server did not
report what it needs (no usage, a model not in the price table), the check is errored, not failed.
"""

from __future__ import annotations

from ..api.response import Response
from .build import errored, label, limit, named
from .core import Case, Check, Result

__all__ = ["cost", "latency", "max_tokens"]


def max_tokens(n: int, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer used at most ``n`` completion tokens (the server's usage, reasoning
    included); errored when the server reported no usage."""
    most = int(limit("max_tokens", n, whole=True))
    name = label("max_tokens", most)
    ok = Result(name, 1.0, True)

    def run(response: Response, case: Case) -> Result:
        usage = response.usage
        if not usage.reported:
            return errored(name, "the server reported no usage, so the tokens are unknown")
        used = usage.completion_tokens
        return ok if used <= most else Result(name, 0.0, False, f"{used} completion tokens, over {most}")

    return named(name, run, weight, needs_case=False)


def latency(seconds: float, *, weight: float = 1.0) -> Check:
    """Scores 1 when the whole answer took at most ``seconds`` (its total elapsed time), else 0."""
    most = limit("latency", seconds, whole=False)
    name = label("latency", most)
    ok = Result(name, 1.0, True)

    def run(response: Response, case: Case) -> Result:
        took = response.elapsed
        if took is None:
            return errored(name, "the answer has no elapsed time")
        return ok if took <= most else Result(name, 0.0, False, f"took {took:.2f} s, over {most:g} s")

    return named(name, run, weight, needs_case=False)


def cost(usd: float, *, weight: float = 1.0) -> Check:
    """Scores 1 when the answer's estimated cost (the package's price table) is at most ``usd``;
    errored when the cost is unknown (a model not in the table, offline, or no usage reported)."""
    most = limit("cost", usd, whole=False)
    name = label("cost", most)
    ok = Result(name, 1.0, True)

    def run(response: Response, case: Case) -> Result:
        spent = response.cost
        if spent is None:
            return errored(name, f"the cost of {response.model or 'this answer'} is unknown")
        return ok if spent <= most else Result(name, 0.0, False, f"cost ${spent:.6f}, over ${most:g}")

    return named(name, run, weight, needs_case=False)
