"""Checks over answers: scores, weights, errors that are not failures, and the Wilson interval."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from qwen_magics import checks
from qwen_magics.api.client import AsyncClient, Client
from qwen_magics.api.request import Retry
from qwen_magics.api.response import Event, Response, Usage
from qwen_magics.emulator import Emulator
from qwen_magics.errors import ParameterError


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


# -- the named checks ----------------------------------------------------------------------------
def run(c: checks.Check, text: str, case: dict[str, object] | None = None) -> checks.Result:
    return c.run(answer(text), case)


def with_usage(text: str, *, completion: int | None, model: str = "qwen-plus") -> Response:
    """A finished answer whose server reported ``completion`` tokens (None: no usage at all)."""
    events = [Event("start", data={"model": model}), Event("text", text), Event("finish", data="stop")]
    if completion is not None:
        usage = Usage(prompt_tokens=10, completion_tokens=completion, total_tokens=10 + completion)
        events.append(Event("usage", data=usage))
    response = Response(request={"model": model, "messages": []}, params={}, source=iter(events))
    return response.complete()


@pytest.mark.parametrize(
    ("made", "good", "bad", "why"),
    [
        (checks.contains("Paris"), "It is Paris.", "It is Lyon.", "does not contain 'Paris'"),
        (checks.icontains("paris"), "PARIS!", "Lyon", "does not contain 'paris' (ignoring case)"),
        (checks.regex(r"\d{3}"), "code 123", "code 12", r"does not match '\\d{3}'"),
        (checks.equals("42"), "  42\n", "42!", "is '42!', not '42'"),
        (checks.starts_with("Yes"), "\n Yes, it is.", "No. Yes.", "starts with 'No. Yes.', not 'Yes'"),
        (checks.max_length(5), "short", "longer", "6 characters, over 5"),
        (checks.similar("the cat sat on the mat"), "On the mat the cat sat", "dogs bark", "similarity 0.00"),
    ],
)
def test_each_text_check_passes_and_fails_saying_why(
    made: checks.Check, good: str, bad: str, why: str
) -> None:
    passed = run(made, good)
    assert passed.passed is True and passed.score == pytest.approx(1.0) and not passed.errored
    failed = run(made, bad)
    assert failed.passed is False and failed.score == 0.0 and not failed.errored
    assert failed.reason.startswith(why)


def test_checks_have_readable_names() -> None:
    assert checks.contains("Paris").name == "contains('Paris')"
    assert checks.regex(r"\d+").name == r"regex('\\d+')"
    assert checks.max_tokens(100).name == "max_tokens(100)"
    assert checks.is_json().name == "is_json()"
    assert checks.similar("a b", 0.5).name == "similar('a b', 0.5)"
    assert checks.contains("x" * 100).name.endswith("…')")


def test_a_bad_regex_is_refused_when_the_check_is_made() -> None:
    with pytest.raises(ParameterError, match="not a regular expression"):
        checks.regex("(unclosed")


def test_is_json_finds_fenced_json_and_says_what_was_wrong() -> None:
    assert run(checks.is_json(), 'Here:\n```json\n{"a": 1}\n```').passed
    assert run(checks.is_json(), '{"a": [1, 2]}').passed
    none = run(checks.is_json(), "no JSON here")
    assert none.passed is False and none.reason.startswith("not JSON: no JSON object or array")
    broken = run(checks.is_json(), "{'a': 1, 'b': [2,}")
    assert broken.passed is False and "malformed" in broken.reason


def test_matches_schema_takes_every_schema_form() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Planet(pydantic.BaseModel):
        name: str
        moons: int

    json_schema = {"type": "object", "properties": {"moons": {"type": "integer"}}, "required": ["moons"]}
    for schema in ("name, moons int", json_schema, Planet):
        made = checks.matches_schema(schema)
        assert run(made, '{"name": "Mars", "moons": 2}').passed, schema
        wrong = run(made, '{"name": "Mars", "moons": "two"}')
        assert wrong.passed is False and wrong.reason.startswith("does not follow the schema: moons"), wrong
    assert run(checks.matches_schema("name"), "Mars").reason.startswith("not JSON")
    assert checks.matches_schema(Planet).name == "matches_schema(Planet)"
    with pytest.raises(ParameterError):
        checks.matches_schema("name wrongtype")


def test_max_tokens_counts_completion_tokens_and_errors_without_usage() -> None:
    assert checks.max_tokens(10).run(with_usage("x", completion=10)).passed
    over = checks.max_tokens(10).run(with_usage("x", completion=11))
    assert over.passed is False and over.reason == "11 completion tokens, over 10"
    unknown = checks.max_tokens(10).run(with_usage("x", completion=None))
    assert unknown.errored and "reported no usage" in unknown.reason


def test_cost_uses_the_price_table_and_errors_when_unknown() -> None:
    cheap = with_usage("x", completion=1000)  # qwen-plus: 10 in, 1000 out = $0.001204
    assert checks.cost(0.01).run(cheap).passed
    dear = checks.cost(0.001).run(cheap)
    assert dear.passed is False and dear.reason == "cost $0.001204, over $0.001"
    assert checks.cost(1).run(with_usage("x", completion=None)).errored
    assert checks.cost(1).run(with_usage("x", completion=5, model="my-own-model")).errored


def test_latency_is_the_whole_answers_elapsed_time() -> None:
    quick = answer("x")
    assert checks.latency(5).run(quick).passed
    assert quick.elapsed is not None
    slow = checks.latency(0).run(quick) if quick.elapsed > 0 else None
    if slow is not None:
        assert slow.passed is False and slow.reason.startswith("took ")


def test_similar_scores_the_word_cosine_and_passes_at_its_threshold() -> None:
    assert checks.similarity("a b c", "c b a") == pytest.approx(1.0)
    assert checks.similarity("a b", "a c") == pytest.approx(0.5)
    half = run(checks.similar("a b", threshold=0.5), "A C")
    assert half.passed and half.score == pytest.approx(0.5)
    under = run(checks.similar("a b", threshold=0.6), "a c")
    assert under.passed is False and under.score == pytest.approx(0.5) and "under 0.6" in under.reason


@pytest.mark.parametrize(
    "made",
    [checks.contains, checks.icontains, checks.equals, checks.starts_with, checks.regex, checks.similar],
)
def test_a_case_column_fills_every_text_check(made: Callable[[str], checks.Check]) -> None:
    c = made("{expected}")
    assert c.needs_case
    assert c.run(answer("Paris"), {"expected": "Paris"}).passed
    assert c.run(answer("Paris"), {"expected": "Oslo"}).passed is False
    missing = c.run(answer("Paris"), {"city": "Paris"})
    assert (
        missing.errored
        and missing.reason == "{expected} is not a column of the case (the case's columns are city)"
    )
    assert "there is no case" in c.run(answer("Paris")).reason


def test_a_case_value_in_a_regex_is_taken_literally() -> None:
    c = checks.regex(r"^{price}\b")
    assert c.run(answer("3.14 dollars"), {"price": "3.14"}).passed
    assert c.run(answer("3x14 dollars"), {"price": "3.14"}).passed is False
    assert checks.regex(r"a{2}").needs_case is False


def test_a_weight_is_a_keyword_or_weighted() -> None:
    assert checks.contains("x", weight=2).weight == 2.0
    assert checks.judge("polite?", weight=3).weight == 3.0
    assert checks.is_json().weighted(0.5).weight == 0.5
    verdict = checks.evaluate([checks.contains("a", weight=3), checks.contains("b")], answer("a"))
    assert verdict.score == 0.75
    with pytest.raises(ParameterError, match="weight"):
        checks.contains("x", weight=-1)


def test_bad_arguments_are_refused_when_a_check_is_made() -> None:
    for make in (
        lambda: checks.max_length(-1),
        lambda: checks.max_tokens(2.5),
        lambda: checks.latency(float("nan")),
        lambda: checks.similar("a", threshold=1.5),
        lambda: checks.judge(""),
        lambda: checks.contains(3),  # type: ignore[arg-type]
    ):
        with pytest.raises(ParameterError):
            make()


# -- the short forms ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("contains:Paris", "contains('Paris')"),
        ("icontains:paris", "icontains('paris')"),
        (r"regex:\d+", r"regex('\\d+')"),
        ("equals:42", "equals('42')"),
        ("starts_with:Yes", "starts_with('Yes')"),
        ("starts-with:Yes", "starts_with('Yes')"),
        ("json", "is_json()"),
        ("schema:name, age int", "matches_schema('name, age int')"),
        ("max_length:200", "max_length(200)"),
        ("max_tokens:100", "max_tokens(100)"),
        ("latency:2.5", "latency(2.5)"),
        ("cost:0.001", "cost(0.001)"),
        ("similar:the cat sat", "similar('the cat sat')"),
        ("similar:0.7:the cat sat", "similar('the cat sat', 0.7)"),
        ("judge:is it polite?", "judge('is it polite?')"),
        ('judge:"is it: polite?"', "judge('is it: polite?')"),
        ("contains:a:b", "contains('a:b')"),
    ],
)
def test_every_short_form_makes_its_check(spec: str, name: str) -> None:
    assert checks.parse_spec(spec).name == name


def test_a_short_form_threshold_reaches_the_check() -> None:
    assert run(checks.parse_spec("similar:0.5:a b"), "a c").passed
    assert run(checks.parse_spec("similar:a b"), "a c").passed is False


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("contain:Paris", "unknown check 'contain'"),
        ("contains", "contains needs a value after ':'"),
        ("max_tokens:lots", "max_tokens needs a number, not 'lots'"),
        ("max_length:-3", "max_length needs a whole number >= 0"),
        ("json:yes", "json takes no value"),
        ("similar:1.5:abc", "the threshold '1.5' is not in [0, 1]"),
    ],
)
def test_a_bad_short_form_is_one_line_listing_the_forms(spec: str, why: str) -> None:
    with pytest.raises(ParameterError) as info:
        checks.parse_spec(spec)
    message = str(info.value)
    assert why in message and "the forms are contains:TEXT" in message and "\n" not in message


def test_a_bad_pattern_in_a_short_form_is_a_parameter_error() -> None:
    with pytest.raises(ParameterError, match="not a regular expression"):
        checks.parse_spec("regex:(")


# -- the judge, over HTTP against the emulator ----------------------------------------------------
def test_the_judge_gives_its_score_and_one_line_reason(qwen_env: Emulator) -> None:
    qwen_env.queue_reply('{"score": 0.8, "reason": "clear\\nand short"}')
    got = checks.judge("is it clear?").run(answer("The sea is blue."))
    assert got == checks.Result("judge('is it clear?')", 0.8, True, "clear and short")
    (sent,) = qwen_env.chat_requests
    assert "Rubric: is it clear?" in json.dumps(sent.body) and "The sea is blue." in json.dumps(sent.body)
    assert sent.body["temperature"] == 0


def test_the_judge_fails_under_its_threshold(qwen_env: Emulator) -> None:
    qwen_env.queue_reply('{"score": 0.3, "reason": "rambles"}')
    got = checks.judge("is it short?", threshold=0.5).run(answer("..."))
    assert got.passed is False and got.score == 0.3 and got.reason == "rambles"


def test_the_emulators_own_grade_is_inside_the_scale(qwen_env: Emulator) -> None:
    got = checks.judge("is it clear?").run(answer("x"))
    assert got.score == 0.5 and got.passed and not got.errored


def test_the_judge_rubric_fills_from_the_case(qwen_env: Emulator) -> None:
    qwen_env.queue_reply('{"score": 1, "reason": "names it"}')
    got = checks.judge("does it name {city}?").run(answer("Paris"), {"city": "Paris"})
    assert got.passed and "does it name Paris?" in json.dumps(qwen_env.chat_requests[0].body)


def test_a_judge_rate_limited_after_its_retries_is_errored_not_failed(qwen_env: Emulator) -> None:
    qwen_env.add_fault("status", status=429, times=None)
    with Client(retry=Retry(attempts=2, backoff=0.01, max_backoff=0.02)) as client:
        verdict = checks.evaluate(
            [checks.judge("polite?", client=client), checks.contains("sea")], answer("the sea")
        )
    graded, found = verdict.results
    assert graded.errored and graded.passed is None and "the judge could not grade" in graded.reason
    assert "429" in graded.reason
    assert found.passed and verdict.score == 1.0
    assert len(qwen_env.chat_requests) == 2


def test_a_judge_without_a_server_is_errored(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-test-fake-key-0123456789-WXYZ")
    with Client(retry=Retry(attempts=1)) as client:
        got = checks.judge("polite?", client=client).run(answer("hi"))
    assert got.errored and got.score is None


def test_judges_in_an_event_loop_await_their_grades(qwen_env: Emulator) -> None:
    qwen_env.queue_reply('{"score": 0.9, "reason": "polite"}')
    qwen_env.queue_reply('{"score": 0.2, "reason": "too long"}')
    made = [checks.judge("polite?").weighted(2), checks.judge("short?"), checks.contains("sea")]
    assert made[0].afn is not None and made[0].weight == 2.0

    async def main() -> checks.Verdict:
        async with AsyncClient() as client:
            shared = [
                checks.judge("polite?", client=client).weighted(2),
                checks.judge("short?", client=client),
            ]
            return await checks.aevaluate([*shared, made[2]], answer("the sea"), threshold=0.5)

    verdict = asyncio.run(main())
    assert sorted(r.score for r in verdict.results[:2]) == [0.2, 0.9]  # queued replies: either order
    assert verdict.results[2].passed and verdict.passed is not None


def test_a_rate_limited_judge_in_an_event_loop_is_errored(qwen_env: Emulator) -> None:
    qwen_env.add_fault("status", status=429, times=None)

    async def main() -> checks.Result:
        async with AsyncClient(retry=Retry(attempts=2, backoff=0.01, max_backoff=0.02)) as client:
            return await checks.judge("polite?", client=client).arun(answer("hi"))

    got = asyncio.run(main())
    assert got.errored and "429" in got.reason


def test_local_checks_run_alike_in_an_event_loop() -> None:
    verdict = asyncio.run(checks.aevaluate([checks.contains("a"), checks.max_length(1)], answer("ab")))
    assert [r.passed for r in verdict.results] == [True, False] and verdict.score == 0.5


def test_a_dataframe_row_is_a_case() -> None:
    pd = pytest.importorskip("pandas")
    row = pd.DataFrame({"city": ["Paris"]}).iloc[0]
    assert checks.contains("{city}").run(answer("Paris"), row).passed
    missing = checks.contains("{expected}").run(answer("Paris"), row)
    assert missing.errored and missing.reason.endswith("(the case's columns are city)")


def test_judge_names_show_a_model_and_threshold_given() -> None:
    assert checks.judge("polite?", model="qwen-flash").name == "judge('polite?', model='qwen-flash')"
    assert checks.parse_spec("judge:0.7:polite?").name == "judge('polite?', 0.7)"
    assert checks.starts_with(" Yes").run(answer("Yes.")).passed


# -- names of callables ---------------------------------------------------------------------------
def test_a_lambda_check_is_named_by_its_expression() -> None:
    made = checks.resolve([lambda r: "sea" in r.text, lambda r, case: len(r.text) < case["most"]])
    assert [c.name for c in made] == ['"sea" in r.text', 'len(r.text) < case["most"]']
    long = checks.resolve(lambda r: r.text.strip().lower().startswith("the answer is forty-two"))
    assert long[0].name == 'r.text.strip().lower().startswith("the …' and len(long[0].name) == 40


def test_a_callable_without_source_is_numbered_and_a_name_can_be_given() -> None:
    unseen = eval("lambda r: True")  # no source file to read the expression from
    made = checks.resolve([checks.contains("a"), unseen])
    assert made[1].name == "check 2"
    assert checks.check(unseen, name="always").name == "always"
    assert checks.check(name="always")(unseen).name == "always"
    assert checks.check("always", weight=2)(unseen).weight == 2.0

    @checks.check
    def short(response: Response) -> bool:
        return len(response.text) < 10

    assert short.name == "short" and short.run(answer("tiny")).passed
    with pytest.raises(ParameterError, match="name once"):
        checks.check("a", name="b")
    with pytest.raises(ParameterError, match="threshold is a score"):
        checks.check(unseen, threshold=2)
    with pytest.raises(ParameterError, match="takes a function"):
        checks.check(checks.contains("a"))  # type: ignore[call-overload]


# -- graded checks: their own pass mark, then full credit ------------------------------------------
CAT = "the cat sat on the mat"  # "the cat sat on a mat": 5 shared of 5 and 6 words, 0.91


def test_a_graded_similar_that_reaches_its_mark_passes_the_answer_at_threshold_1() -> None:
    verdict = checks.evaluate(
        [checks.similar(CAT, 0.8), checks.contains("cat")], answer("the cat sat on a mat")
    )
    graded = verdict.results[0]
    assert graded.passed and graded.score == pytest.approx(0.9129, abs=1e-4) and graded.credit == 1.0
    assert verdict.score == 1.0 and verdict.passed  # threshold 1.0: every check passed


def test_a_graded_similar_under_its_mark_counts_its_raw_score() -> None:
    made = [checks.similar(CAT, 0.95), checks.contains("cat")]
    verdict = checks.evaluate(made, answer("the cat sat on a mat"))
    assert verdict.results[0].passed is False and verdict.results[0].credit == pytest.approx(0.9129, abs=1e-4)
    assert verdict.score == pytest.approx((0.9129 + 1) / 2, abs=1e-4) and verdict.passed is False
    assert checks.evaluate(made, answer("the cat sat on a mat"), threshold=0.9).passed  # a near miss


def test_a_graded_similar_that_errors_leaves_the_score() -> None:
    verdict = checks.evaluate(
        [checks.similar("{reference}"), checks.contains("cat")], answer("a cat"), {"other": "x"}
    )
    assert verdict.results[0].errored and verdict.results[0].credit is None
    assert verdict.score == 1.0 and verdict.passed


def test_a_callable_score_passes_at_its_own_threshold() -> None:
    def nine_tenths(response: Response) -> float:
        return 0.9

    marked = checks.check(nine_tenths, threshold=0.8)
    verdict = checks.evaluate([marked, checks.contains("a")], answer("a"))
    assert verdict.results[0].passed and verdict.results[0].score == 0.9 and verdict.score == 1.0
    plain = checks.evaluate([checks.check(nine_tenths), checks.contains("a")], answer("a"))
    assert plain.results[0].passed is False and plain.results[0].reason == "scored 0.90, under 1"
    assert plain.score == pytest.approx(0.95) and plain.passed is False

    def broken(response: Response) -> float:
        raise ValueError("no score today")

    errored = checks.evaluate([checks.check(broken, threshold=0.5), checks.contains("a")], answer("a"))
    assert errored.results[0].errored and errored.score == 1.0 and errored.passed


def test_a_callable_using_similarity_is_graded_too() -> None:
    close = checks.check(lambda r: checks.similarity(r.text, CAT), threshold=0.9)
    assert checks.evaluate([close], answer("the cat sat on a mat")).passed
    assert checks.evaluate([close], answer("a dog")).score == 0.0


def test_a_judge_that_reaches_its_mark_counts_in_full(qwen_env: Emulator) -> None:
    qwen_env.queue_reply('{"score": 0.7, "reason": "mostly polite"}')
    verdict = checks.evaluate([checks.judge("polite?"), checks.contains("sea")], answer("the sea"))
    assert verdict.results[0].score == 0.7 and verdict.results[0].passed
    assert verdict.score == 1.0 and verdict.passed


def test_a_judge_under_its_mark_counts_its_grade(qwen_env: Emulator) -> None:
    qwen_env.queue_reply('{"score": 0.7, "reason": "mostly polite"}')
    made = [checks.judge("polite?", threshold=0.8), checks.contains("sea")]
    verdict = checks.evaluate(made, answer("the sea"), threshold=0.8)
    assert verdict.results[0].passed is False and verdict.score == pytest.approx(0.85) and verdict.passed


def test_a_judge_that_errors_leaves_the_score(qwen_env: Emulator) -> None:
    qwen_env.add_fault("status", status=429, times=None)
    with Client(retry=Retry(attempts=1)) as client:
        verdict = checks.evaluate(
            [checks.judge("polite?", client=client), checks.contains("sea")], answer("the sea")
        )
    assert verdict.results[0].errored and verdict.score == 1.0 and verdict.passed


def test_ascii_and_unicode_texts_split_into_the_same_words() -> None:
    from qwen_magics.checks.similarity import _WORD, words

    texts = ["Hello, World! it's 2_000-ish\tOK?", "a\x1fb\x0bc", "", "  ", "ÉCOLE école", "Zz@[`{~"]
    texts += ["".join(map(chr, range(128)))]
    for text in texts:
        assert words(text) == frozenset(_WORD.findall(text.casefold())), text
    for said in [*texts, "école Hello world", "hello WORLD"]:  # ASCII answers meet words as bytes
        for reference in ("hello world", "École hello", ""):
            made = checks.similar(reference, 0.0).run(answer(said))
            assert made.score == pytest.approx(checks.similarity(said, reference)), (said, reference)


def test_a_lambda_typed_in_a_notebook_cell_is_named_by_its_expression(ip: Any) -> None:
    ip.run_cell("from qwen_magics import checks\nmade = checks.resolve([lambda r: 'x' in r.text])")
    assert ip.user_ns["made"][0].name == "'x' in r.text"
