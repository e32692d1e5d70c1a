"""Checks over answers: scores, weights, errors that are not failures, and the Wilson interval."""

from __future__ import annotations

import pytest

from qwen_magics import checks
from qwen_magics.api.response import Event, Response


def answer(text: str) -> Response:
    """A finished Response holding ``text``, from the events a stream gives."""
    events = [Event("start", data={}), Event("text", text), Event("finish", data="stop")]
    response = Response(request={"model": "qwen-plus", "messages": []}, params={}, source=iter(events))
    return response.complete()


@pytest.mark.parametrize(
    ("passed", "n", "low", "high"),
    [(8, 10, 0.4902, 0.9433), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (50, 100, 0.4038, 0.5962)],
)
def test_the_wilson_interval_matches_known_values(passed: int, n: int, low: float, high: float) -> None:
    got = checks.wilson(passed, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_a_callable_check_that_raises_is_errored_not_failed_and_the_rest_go_on() -> None:
    def boom(response: Response) -> bool:
        raise RuntimeError("no luck")

    verdict = checks.evaluate(checks.resolve([boom, lambda r: "sea" in r.text]), answer("the sea"))
    assert [r.errored for r in verdict.results] == [True, False]
    assert verdict.results[0].reason == "RuntimeError: no luck"
    assert verdict.score == 1.0 and verdict.passed


def test_weights_and_the_threshold_decide_a_pass() -> None:
    yes = checks.check("yes")(lambda r: True)
    no = checks.check("no")(lambda r: False)
    verdict = checks.evaluate([yes.weighted(3), no], answer("x"), threshold=0.75)
    assert verdict.score == 0.75 and verdict.passed
    assert checks.evaluate([yes, no], answer("x"), threshold=0.75).passed is False


def test_a_case_column_fills_a_checks_text() -> None:
    assert checks.fill("{expected}!", {"expected": "Paris"}) == "Paris!"
    with pytest.raises(KeyError, match="'answer' is not a column of the case"):
        checks.fill("{answer}", {"expected": "Paris"})
