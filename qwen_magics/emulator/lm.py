"""The offline language model behind the emulator: a word-level n-gram model that really samples.

Trained once per process from the prose in ``corpus/`` (one file per topic, a ``# names:`` line
listing the things it talks about) as an interpolated Kneser-Ney 5-gram model, mixed over the
topics the prompt's words point to. The model's next-word distribution is that smoothed estimate
times the prompt's conditioning (its own words are BOOST times likelier) and a mild unigram prior;
the sampler then gives DashScope's knobs their real meaning: logits (log-probabilities) divided by
the temperature (0: greedy), top_k and top_p trimming the tail, presence_penalty lowering words
already used, and ``random.Random(seed)`` so that a seeded call repeats exactly. Low temperatures
retell the corpus; high ones wander between its phrases. Standard library only.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .jsonfill import JsonFiller
from .words import _content, _number, _set, _stem, _words, count_tokens, split_pieces

__all__ = ["LanguageModel", "count_tokens", "split_pieces"]

ORDER = 5  # stable at low temperature, still branching at every common phrase
DISCOUNTS = (0.4, 0.3, 0.3, 0.4, 0.5)  # absolute discount by context length (moderate: tiny corpus)
BOS, EOP = "<s>", "</p>"  # paragraph start padding; end of paragraph (the model's own stop)
DEFAULT_TEMPERATURE, DEFAULT_TOP_P = 0.7, 0.8
BOOST = 3.0  # how much likelier the prompt makes its own words (the model's prompt conditioning)
PRIOR = 0.3  # exponent of the unigram prior multiplied in: common words win the counts' ties
CANDIDATES = 150  # continuations kept at each step
FOLLOWERS = 60  # continuations kept per context (the rest is left to shorter contexts)
FLOOR = 100  # the most common words are always candidates (the unigram tail of the smoothing)
MIN_SENTENCE = 4  # words before a sentence may end
NO_REPEAT = 6  # an answer never repeats a run of this many words (no greedy loops)
CORPUS = Path(__file__).with_name("corpus")

_END, _GLUE, _BANNED = frozenset(".!?"), frozenset(".,;:!?%)"), frozenset('()"')
_LIST = _set("list points bullet bullets")
_MANY = _set("tips ways steps ideas examples reasons facts things kinds types")
_LONG = _set("explain write describe essay story detail details detailed elaborate")
_T = TypeVar("_T")
Mix = list[tuple[float, "_NGram"]]


def _render(tokens: Iterable[str]) -> Iterator[str]:
    """Model tokens to text pieces: a leading space where English puts one."""
    prev = ""
    for tok in tokens:
        glued = not prev or prev[0] == "\n" or tok in _GLUE or tok[0] == "\n"
        glued = glued or ord(tok[0]) >= 0x2E80 <= ord(prev[-1])  # no spaces within CJK text
        yield tok if glued else " " + tok
        prev = tok


def _limit(pieces: Iterable[str], max_tokens: int, stop: str | Sequence[str] | None) -> Iterator[str]:
    """At most max_tokens pieces, ending before the first stop string (which is not emitted)."""
    stops = [s for s in ([stop] if isinstance(stop, str) else stop or []) if s]
    held: list[str] = []  # pieces that may be the start of a stop string
    for piece in itertools.islice(pieces, max(0, max_tokens)):
        held.append(piece)
        text = "".join(held)
        cuts = [text.find(s) for s in stops if s in text]
        if cuts:
            cut, done = min(cuts), 0
            for h in held:
                if done + len(h) <= cut:
                    yield h
                elif h[: cut - done].strip():
                    yield h[: cut - done].rstrip()
                done += len(h)
            return
        keep = max((n for s in stops for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
        while held and len(text) - len(held[0]) >= keep:
            text = text[len(held[0]) :]
            yield held.pop(0)
    yield from held


def _draw(s: _Sampler, scores: dict[_T, float]) -> _T:
    """Sample one key of scores, as probabilities proportional to the scores."""
    total = sum(scores.values())
    return s.pick([(k, v / total) for k, v in scores.items()])


class _NGram:
    """Kneser-Ney counts of one text: raw counts at the top order, continuation counts below."""

    def __init__(self, paragraphs: list[list[str]], names: Sequence[str] = ()) -> None:
        self.counts: list[dict[tuple[str, ...], dict[str, int]]] = [{} for _ in range(ORDER)]
        self.vocab: dict[str, int] = {}  # stem -> count, for choosing topics
        self.starts: dict[tuple[str, ...], dict[tuple[str, ...], int]] = {}  # stems -> openings
        top = self.counts[ORDER - 1]
        for para in paragraphs:
            seq = [BOS] * (ORDER - 1) + para + [EOP]
            for i in range(ORDER - 1, len(seq)):
                followers = top.setdefault(tuple(seq[i - ORDER + 1 : i]), {})
                followers[seq[i]] = followers.get(seq[i], 0) + 1
            for i, w in enumerate(para):
                self.vocab[_stem(w)] = self.vocab.get(_stem(w), 0) + 1
                if i == 0 or para[i - 1] in _END:  # a sentence opens: on 1-2 words, maybe after "The"
                    j = i + (w in ("The", "A", "An"))
                    for n in (1, 2):
                        found = self.starts.setdefault(tuple(_stem(x) for x in para[j : j + n]), {})
                        found[tuple(para[i : j + n])] = found.get(tuple(para[i : j + n]), 0) + 1
        for k in range(ORDER - 2, -1, -1):  # N1+(. ctx w): distinct words seen before ctx w
            for ctx, followers in self.counts[k + 1].items():
                into = self.counts[k].setdefault(ctx[1:], {})
                for w in followers:
                    into[w] = into.get(w, 0) + 1
        # the things this topic talks about (JSON names, list items), weighed by mentions
        self.names = {  # the more mentioned the more salient; ties go to the first listed
            n: (1 + min(self.vocab.get(_stem(w), 0) for w in _words(n))) ** 2 + 1 / (2 + i)
            for i, n in enumerate(names)
        }
        self._cache: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[float, ...], float]] = {}
        self.prior: dict[str, float] = {}  # set by the LanguageModel

    def entry(self, ctx: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[float, ...], float]:
        """(words, discounted probabilities, weight left for the shorter context) after ctx."""
        got = self._cache.get(ctx)
        if got is None:
            followers = self.counts[len(ctx)].get(ctx)
            if not followers:
                got = ((), (), 1.0)
            else:
                total, d = sum(followers.values()), DISCOUNTS[len(ctx)]
                top = sorted(followers.items(), key=lambda wc: -wc[1])[:FOLLOWERS]
                probs = [(c - d) / total for _, c in top]  # the rest goes to shorter contexts
                prior = self.prior
                got = (
                    tuple(w for w, _ in top),
                    tuple(p * prior.get(w, 1.0) for (w, _), p in zip(top, probs, strict=True)),
                    1.0 - sum(probs),
                )
            self._cache[ctx] = got
        return got


class _Sampler:
    """The decoding settings and the random source of one call."""

    def __init__(self, temperature: float | None, top_p: float | None, top_k: int | None = None,
                 penalty: float | None = None, seed: int | None = None) -> None:  # fmt: skip
        self.t = DEFAULT_TEMPERATURE if temperature is None else float(temperature)
        if self.t < 0:
            raise ValueError(f"temperature must be >= 0; got {temperature!r}")
        self.top_p = DEFAULT_TOP_P if top_p is None else float(top_p)
        self.top_k = int(top_k) if top_k is not None and 0 < top_k <= 100 else 0
        self.penalty = float(penalty or 0.0)
        self.rng = random.Random(seed)
        self.used: set[Any] = set()  # choices made so far (for presence_penalty)
        self.seen: dict[tuple[str, ...], set[str]] = {}  # words written after each run (NO_REPEAT)
        self.openings: set[tuple[str, ...]] = set()  # sentence openings used so far
        self.about: list[str] = []  # the prompt's content words
        self.boost: frozenset[str] = frozenset()  # their forms, which the prompt makes likelier

    def pick(self, items: Sequence[tuple[_T, float]]) -> _T:
        """Draw one of (choice, probability) pairs; the most probable at temperature 0.

        Works on probabilities: p ** (1/T) is exp(logit / T), and a penalty of x is a factor exp(-x).
        """
        ps = [p for _, p in items]
        if self.penalty:
            f = math.exp(-self.penalty)
            ps = [p * f if c in self.used else p for (c, _), p in zip(items, ps, strict=True)]
        order = sorted(range(len(items)), key=ps.__getitem__, reverse=True)
        if self.t <= 1e-6 or len(order) == 1:
            return items[order[0]][0]
        if self.top_k:
            order = order[: self.top_k]
        top, inv = ps[order[0]], 1 / self.t
        cum = list(itertools.accumulate((ps[i] / top) ** inv for i in order))
        keep = min(bisect.bisect_left(cum, self.top_p * cum[-1] * (1 - 1e-12)) + 1, len(cum))
        r = self.rng.random() * cum[keep - 1]
        return items[order[min(bisect.bisect_right(cum, r), keep - 1)]][0]

    def integer(self, low: int, high: int) -> int:
        return (low + high) // 2 if self.t <= 1e-6 else self.rng.randint(low, high)


class LanguageModel:
    """The n-gram model of the corpus topics (see the module docstring); ``load()`` it."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.topics: dict[str, _NGram] = {}
        everything: list[list[str]] = []
        for name, text in texts.items():
            names = [
                n.strip()
                for line in re.findall(r"(?m)^# names:(.*)$", text)
                for n in line.split(",")
                if n.strip()
            ]
            text = re.sub(r"(?m)^#.*$", "", text)
            paras = [_words(p) for p in re.split(r"\n\s*\n", text) if p.strip()]
            self.topics[name] = _NGram(paras, names)
            everything += paras if name != "reasoning" else []
        self.reasoning = self.topics.pop("reasoning", _NGram([]))
        self.general = _NGram(everything, [n for m in self.topics.values() for n in m.names])
        df: dict[str, int] = {}
        for m in self.topics.values():
            for stem in m.vocab:
                df[stem] = df.get(stem, 0) + 1
        self.idf = {stem: math.log(len(self.topics) / n) for stem, n in df.items()}
        uni = self.general.counts[0].get((), {})
        self.unigram = {w: c / max(1, sum(uni.values())) for w, c in uni.items()}
        self.prior = {w: p**PRIOR for w, p in self.unigram.items()}
        for m in (*self.topics.values(), self.general, self.reasoning):
            m.prior = self.prior
        words = [(w, p * self.prior[w]) for w, p in self.unigram.items() if w[0].isalnum() or w[0] == "`"]
        self.floor = sorted(words, key=lambda kv: -kv[1])[:FLOOR]  # no punctuation from nowhere
        self.forms: dict[str, set[str]] = {}  # stem -> the words of the corpus with that stem
        for w in itertools.chain(uni, self.reasoning.counts[0].get((), {})):
            self.forms.setdefault(_stem(w), set()).add(w)

    def _start(self, s: _Sampler, about: Sequence[str]) -> _Sampler:
        """Condition the call on the prompt's content words."""
        s.about = list(about)
        s.boost = frozenset(f for w in about for f in self.forms.get(_stem(w), ()))
        return s

    @classmethod
    def load(cls) -> LanguageModel:
        """The model trained on the shipped corpus, once per process."""
        global _MODEL
        with _LOCK:
            if _MODEL is None:
                _MODEL = cls({p.stem: p.read_text("utf-8") for p in sorted(CORPUS.glob("*.txt"))})
            return _MODEL

    def count_tokens(self, text: str) -> int:
        """Tokens in a text, counted as answer() yields them (one per piece)."""
        return count_tokens(text)

    def topics_for(self, prompt: str) -> list[tuple[float, str]]:
        """(weight, topic) for the one or two topics whose vocabulary overlaps the prompt most."""
        stems = [_stem(w) for w in _content(prompt)]
        scores = sorted(
            (
                (sum(m.vocab.get(st, 0) * self.idf.get(st, 0.0) for st in stems), name)
                for name, m in self.topics.items()
            ),
            key=lambda sn: -sn[0],
        )
        chosen = [(s, n) for s, n in scores[:2] if s > 0 and s >= 0.75 * scores[0][0]]
        return [(s / sum(s for s, _ in chosen), n) for s, n in chosen]

    def _mixture(self, prompt: str) -> Mix:
        topics = self.topics_for(prompt)
        if not topics:
            return [(1.0, self.general)]
        return [(0.85 * w, self.topics[n]) for w, n in topics] + [(0.15, self.general)]

    def _next(self, mix: Mix, hist: list[str]) -> list[tuple[str, float]]:
        """The smoothed next-word distribution, pruned to its CANDIDATES most probable words."""
        acc: dict[str, float] = {}
        floor = 0.0
        for weight, m in mix:
            for k in range(ORDER - 1, 0, -1):
                words, probs, gamma = m.entry(tuple(hist[-k:]))
                for w, p in zip(words, probs, strict=True):
                    acc[w] = acc.get(w, 0.0) + weight * p
                weight *= gamma
            floor += weight
        for w, p in self.floor:
            acc[w] = acc.get(w, 0.0) + floor * p
        return sorted(acc.items(), key=lambda kv: -kv[1])[:CANDIDATES]

    def _opening(self, mix: Mix, words: Sequence[str], s: _Sampler, whole: bool = False) -> list[str]:
        """A sentence opening not used yet, as the corpus opens sentences on the whole phrase, or
        else on one of the words or two in a row (as often as the corpus does, a pair counting four
        times and the very word twice); [] when there is none."""
        exact = {w.lower() for w in words}
        stems = [_stem(w) for w in words]
        spans = [tuple(stems)] if whole else [(st,) for st in stems] + list(itertools.pairwise(stems))
        options: dict[tuple[str, ...], float] = {}
        for span in spans:
            for weight, m in mix:
                for key, c in m.starts.get(span, {}).items():
                    if key not in s.openings:
                        bonus = len(span) ** 2 * (1 + (key[-1].lower() in exact))
                        bonus *= self.prior.get(key[0], 1.0)  # and "The" is likelier than "Cats"
                        options[key] = options.get(key, 0.0) + weight * c * bonus
        chosen: tuple[str, ...] = _draw(s, options) if options else ()
        s.openings.add(chosen)
        s.used.update(chosen)
        return list(chosen)

    def _name(self, mix: Mix, s: _Sampler, taken: set[str]) -> str | None:
        """A thing the topic talks about, not yet taken; the most mentioned at temperature 0."""
        scores: dict[str, float] = {}
        for weight, m in [wm for wm in mix if wm[1] is not self.general] or mix:
            for n, c in m.names.items():
                if n.lower() not in taken:
                    scores[n] = scores.get(n, 0.0) + weight * c
        if not scores:
            return None
        name = _draw(s, scores)
        taken.add(name.lower())
        return name

    def _run(self, mix: Mix, hist: list[str], s: _Sampler, lo: int, hi: int, paragraphs: bool = False,
             taken: set[str] | None = None) -> Iterator[str]:  # fmt: skip
        """Tokens continuing hist for lo..hi sentences; the model's own EOP ends it in between.

        With taken, every sentence after the first is a Markdown list item that opens on a thing of
        the topic not yet taken.
        """
        sentences, hold = 0, False
        while True:
            at_end = hist[-1] in _END
            if at_end and sentences >= hi:
                return
            short = next(i for i, t in enumerate(reversed(hist)) if t in _END or t == BOS) < MIN_SENTENCE
            may_stop = at_end and not hold and (sentences >= lo or taken is None)
            prefix = tuple(hist[1 - NO_REPEAT :])
            blocked, boost = s.seen.get(prefix, ()), s.boost
            items = [
                (w, p * BOOST if w in boost else p)
                for w, p in self._next(mix, hist)
                if not (w in blocked or w in _BANNED or (w == EOP and not may_stop) or (short and w in _END))
            ] or [(".", 1.0)]
            w, hold, opening = s.pick(items), False, []
            if w == EOP and sentences >= lo:
                return
            if w == EOP:  # the model ends its paragraph early: open a new one on the prompt
                if paragraphs:
                    yield "\n\n"
                    hist = [BOS] * (ORDER - 1)
                opening, hold = self._opening(mix, s.about, s), True
            elif at_end and taken is not None and sentences:  # a list item on a new thing
                yield from ("\n\n" if sentences == 1 else "\n", "-")
                name = _words(self._name(mix, s, taken) or "")
                opening = self._opening(mix, name, s, whole=True)
                if not opening and name:
                    opening = [name[0][:1].upper() + name[0][1:], *name[1:]]
            if opening or w == EOP:
                hist += opening
                yield from opening
                continue
            s.seen.setdefault(prefix, set()).add(w)
            s.used.add(w)
            hist.append(w)
            sentences += w in _END
            yield w

    def answer(self, prompt: str, *, temperature: float | None = None, top_p: float | None = None,
               top_k: int | None = None, presence_penalty: float | None = None, seed: int | None = None,
               max_tokens: int = 200, stop: str | Sequence[str] | None = None) -> Iterator[str]:  # fmt: skip
        """Answer pieces, each with its leading space or newline; ''.join gives the text.

        It opens on a word of the prompt and runs 2 to 5 sentences (4 to 8, in paragraphs, when the
        prompt asks to explain or write; an intro and one bullet per thing when it asks for a list),
        ending where the model itself ends its paragraph, or at max_tokens, or before a stop string.
        """
        s = self._start(_Sampler(temperature, top_p, top_k, presence_penalty, seed), _content(prompt))
        mix, asked, n = self._mixture(prompt), {w.lower() for w in _words(prompt)}, _number(prompt)
        lo, hi = (4, 8) if asked & _LONG else (2, 5)
        listing = bool(asked & _LIST or (n and asked & _MANY))
        if listing:
            lo, hi = (n + 1, n + 1) if n else (4, 6)
        opening = self._opening(mix, s.about, s)
        hist = [BOS] * (ORDER - 1) + opening
        body = self._run(
            mix, hist, s, lo, hi, paragraphs=hi > 5 and not listing, taken=set() if listing else None
        )
        yield from _limit(_render(itertools.chain(opening, body)), max_tokens, stop)

    def reason(self, prompt: str, *, seed: int | None = None, temperature: float | None = None,
               top_p: float | None = None, budget: int | None = None) -> Iterator[str]:  # fmt: skip
        """Pieces of a thinking phase about the prompt, at most budget of them when given: the
        question restated, a thought or two, a fact recalled from the topic, then the plan."""
        s = self._start(_Sampler(temperature, top_p, seed=seed), _content(prompt))
        facts = self._mixture(prompt)
        mix = [(0.8, self.reasoning)] + [(0.2 * w, m) for w, m in facts if m is not self.general]
        asked = _words(re.split(r"(?<=[.!?])\s+", prompt.strip())[-1])[:16]  # the last sentence
        asked = asked[:-1] if asked and asked[-1] in _GLUE else asked
        opening = ["Okay", ",", "let", "me", "think", "about", "this", "."]
        if asked:
            asked[0] = asked[0].lower() if asked[0][1:2].islower() else asked[0]
            heads = [
                ("Okay , the user asks :", 0.5),
                ("The user is asking :", 0.3),
                ("So the question is :", 0.2),
            ]
            opening = s.pick(heads).split() + asked + ["?" if prompt.rstrip().endswith("?") else "."]
        hist = [BOS] * (ORDER - 1) + opening

        def thoughts() -> Iterator[str]:
            yield from opening
            about, s.about = s.about, []  # thoughts open as thoughts do, not on the prompt's words
            yield from self._run(mix, hist, s, 1, 2)
            fact = self._opening(facts, about, s)
            if fact:
                head = s.pick([("I know that", 0.5), ("I remember that", 0.3), ("One fact is that", 0.2)])
                said = [
                    *head.split(),
                    fact[0].lower() if fact[0].lower() in self.unigram else fact[0],
                    *fact[1:],
                ]
                said += self._run(facts, [BOS] * (ORDER - 1) + fact, s, 1, 1)
                hist.extend(said)
                yield from said
            yield from self._run(mix, hist, s, 1, 3)

        yield from itertools.islice(_render(thoughts()), 400 if budget is None else max(0, budget))

    def json_text(self, prompt: str, schema: dict[str, Any] | None, *, seed: int | None = None,
                  temperature: float | None = None, top_p: float | None = None) -> Iterator[str]:  # fmt: skip
        """Pieces of valid JSON: following the JSON Schema when given, else an object fit for the prompt.

        Names come from the topic's things, texts are sampled sentences and phrases, numbers are
        plausible for their key; all within the schema's types, required keys and bounds.
        """
        if isinstance(schema, dict) and "type" not in schema and isinstance(schema.get("schema"), dict):
            schema = schema["schema"]  # the {"name": ..., "schema": {...}} wrapper
        job = JsonFiller(self, prompt, self._start(_Sampler(temperature, top_p, seed=seed), _content(prompt)))
        value = job.fill(schema, "", 0, schema) if schema else job.free()
        yield from split_pieces(json.dumps(value, indent=2, ensure_ascii=False))

    def _sentence(self, mix: Mix, s: _Sampler, about: Sequence[str], most: int, phrase: bool = False) -> str:
        """One sampled sentence (opening on the about words when it can), or a short phrase."""
        opening = self._opening(mix, about, s)
        body = self._run(mix, [BOS] * (ORDER - 1) + opening, s, 1, 1)
        tokens = opening + list(itertools.islice(body, max(1, most - len(opening))))
        if phrase:
            tokens = list(itertools.takewhile(lambda t: t not in _GLUE, tokens))[:most]
        return "".join(_render(tokens)).strip() or "unknown"


_MODEL: LanguageModel | None = None
_LOCK = threading.Lock()
