"""Reuse policy: may this request be answered from, or stored into, the reuse layer?

Reuse is for answers meant to be reproducible. A request is *novel* (neither looked up nor
stored) when its temperature is above the dial (``reuse.max_temperature``) or it uses tools.
Clients steer per request with ``Cache-Control`` (HTTP semantics) or the
``boundgate`` body field (``extra_body`` in the OpenAI SDK):

| client says | look up | store |
|---|---|---|
| ``Cache-Control: no-cache`` | no | yes |
| ``Cache-Control: no-store`` / ``{"reuse": "off"}`` | no | no |
| ``Cache-Control: max-age=N`` / ``{"max_age": N}`` | answers younger than N s | yes |
| ``Cache-Control: only-if-cached`` | yes; no stored answer: 504, the model not run | — |
| ``Cache-Control: min-fresh=N`` | a time-sensitive answer only while fresh N s more | yes |
| ``{"reuse": "exact"}`` | exact matches only | yes |
| ``{"reuse": "semantic"}`` (default) | exact, then by meaning | yes |

Several ``Cache-Control`` fields count as one list (``max-age=3600`` and ``no-cache`` in two
fields is ``no-cache``), and without any, ``Pragma: no-cache`` is ``no-cache`` (RFC 9111 §5.4).

Time-sensitive questions ("today", "latest", "current price of ...") are answered from the
store only while younger than ``reuse.time_sensitive_max_age_s`` seconds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.request import parse_http_list

from ..errors import InvalidRequestError


class Mode(StrEnum):
    OFF = "off"
    EXACT = "exact"
    SEMANTIC = "semantic"


@dataclass(frozen=True)
class Plan:
    lookup: Mode  # OFF: don't look up
    store: bool
    max_age_s: float | None  # only reuse answers younger than this
    reason: str  # why reuse was bypassed ("" when it wasn't)
    # above the temperature dial: whether a pre-generated variant may be served (not to a
    # request with no-cache, a max-age or a time-sensitive question: a variant is stored)
    variants: bool = True
    # the model's fresh answers label the verifier's observations (answer_labels.py): off,
    # a would-be hit is served unverified and a miss is not observed
    answer_labels: bool = True
    # Cache-Control min-fresh (RFC 9111 §5.2.1.3): a time-sensitive answer serves only while
    # it stays fresh this many more seconds (its freshness lifetime is
    # ``reuse.time_sensitive_max_age_s``; other answers have no end to theirs)
    min_fresh_s: float = 0.0


DEFAULT_TIME_SENSITIVE = (
    r"\b(today|tonight|tomorrow|yesterday|now|right now|currently|current|latest|newest|"
    r"recent|recently|this (week|weekend|month|year|morning|afternoon|evening)|live|breaking|"
    # (not a score of one's own: "how to raise my credit score", a trial's answers kept for
    # 300 s only; a kind of weather stays: "hot weather warning London" is live, a re-check)
    r"weather|forecast|stock price|exchange rate|"
    r"(?<!credit )(?<!sat )(?<!act )(?<!gre )(?<!gmat )(?<!iq )(?<!fico )(?<!exam )"
    r"score|news|headlines|top stories|trending|"
    r"at the moment|as of|"
    # the clock and the calendar (a trial's "What time is it in Tokyo", "What year is it")
    r"what time is it|time is it|what(?:'s| is) the time|the time (in|now)|"
    r"(what|which) day (is|will)|day of the week is it|what(?:'s| is) (?:the )?date(?! of)|"
    r"what (date|year|month) is it|"
    r"(what time|when) (does|do|is|will) (the )?(sun|sunset|sunrise)|"
    r"how (many|much) (days|weeks|months|years|hours|minutes|time) (until|till|til|left|to go)|"
    r"how long (until|till)|born in \d{3,4}|how old (will|would)|countdown|when is the next|"
    r"next (full moon|new moon|eclipse|election|holiday|holidays)|upcoming|last night|"
    r"next week|next weekend|"
    # markets, prices and live events (a trial's "How much is one bitcoin worth?", "How many
    # yen is a dollar?", "Is Amazon stock up or down?", "What's Apple's market cap?", "Is the
    # Eiffel Tower open?" were served for ever)
    r"price of|(usd|eur|gbp|jpy|cny|inr|cad|aud|chf) (in|to) (usd|eur|gbp|jpy|cny|inr|cad|aud|chf)|"
    r"(dollars?|euros?|pounds?|yen|yuan|rupees?|pesos?) (is|are|in|to|per) (a |an |one )?"
    r"(dollar|euro|pound|yen|yuan|rupee|peso)s?|"
    r"how much (is|are) [\w' ]{1,40} worth|"
    r"how much (does|do|is) (gold|silver|platinum|oil|gas|gasoline|petrol|diesel|bitcoin|"
    r"ethereum|an ounce of gold)( \w+)? cost|"
    r"stocks? (up|down|doing)|market cap|share price|"
    r"markets? (open|closed)|open (now|today|tomorrow)|opening hours|"
    r"(is|are) [\w' ]{1,40} (open|closed)(?=\s*[?.!]*\s*$)|"
    r"is it (raining|snowing|sunny|cloudy|windy|cold|hot|warm)|raining|snowing|"
    r"(did|will|is) it (rain|snow|storm|hail)|"
    r"temperature outside|outside temperature|what(?:'s| is) the temperature (in|at)|"
    r"who is winning|standings)\b"
)


class TimeSensitivity:
    """A configurable detector for questions whose answer goes stale quickly."""

    def __init__(self, pattern: str = DEFAULT_TIME_SENSITIVE) -> None:
        self.pattern = re.compile(pattern, re.IGNORECASE)

    def __call__(self, text: str) -> bool:
        # read as typed: compatibility forms folded ("ｔｏｄａｙ") and invisible format
        # characters dropped ("wea\u200bther" was not the weather to the pattern, a trial)
        folded = unicodedata.normalize("NFKC", text)
        return bool(self.pattern.search(_FORMAT_CHARS.sub("", folded)))


_FORMAT_CHARS = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")  # invisible (Cf)

DELTA_SECONDS_MAX = 2**31  # RFC 9111 §1.2.2


def _directives(header: str | None) -> Iterator[tuple[str, str]]:
    """The directives of a Cache-Control request header (its fields joined by commas):
    (name in lower case, value as given; "" without one). A quoted value keeps its commas
    (RFC 9110 §5.6.4: a trial's ``ext="a,no-store,b"`` read as no-store)."""
    for part in parse_http_list(header or ""):
        name, _, value = part.strip().partition("=")
        yield name.strip().lower(), value


def _parse_cache_control(header: str | None) -> tuple[bool, bool, float | None, float]:
    """(no_cache, no_store, max_age, min_fresh) from a Cache-Control request header.
    ``max-stale`` is accepted and not acted on: a cache may decline to serve stale answers
    (RFC 9111 §4.2.4), and a time-sensitive answer past its limit is never served."""
    no_cache = no_store = False
    max_age: float | None = None
    min_fresh = 0.0
    for name, value in _directives(header):
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name == "max-age":
            # a directive given twice: the strictest counts, as between the body's max_age
            # and the header (RFC 9111 §4.2.1 allows treating it as stale; a trial's
            # "max-age=0" then "max-age=1000" was served a 3 s old answer)
            seconds = _delta_seconds(name, value)
            max_age = seconds if max_age is None else min(max_age, seconds)
        elif name == "min-fresh":  # given twice: the strictest (the longer) counts
            min_fresh = max(min_fresh, _delta_seconds(name, value))
    return no_cache, no_store, max_age, min_fresh


def check_cache_control(header: str | None) -> None:
    """Check a Cache-Control request header as a lookup reads it, for an endpoint that stores
    nothing (``/v1/embeddings``): a malformed ``max-age`` or ``min-fresh`` is the same 400
    as on chat. Raises InvalidRequestError (``param`` ``Cache-Control``)."""
    _parse_cache_control(header)


def only_if_cached(header: str | None) -> bool:
    """Whether the Cache-Control request header (its fields joined) says ``only-if-cached``:
    the client wants a stored answer or none (RFC 9111 §5.2.1.7)."""
    return any(name == "only-if-cached" for name, _ in _directives(header))


def _delta_seconds(name: str, value: str) -> float:
    """A directive's delta-seconds (RFC 9111 §1.2.2), clamped at 2^31. Raises
    InvalidRequestError (400, ``param`` ``Cache-Control``) for anything but digits."""
    digits = value.strip().strip('"')  # the quoted form is forgiven (RFC 9111 §5.2)
    if not (digits.isascii() and digits.isdigit()):  # delta-seconds: digits only
        raise InvalidRequestError(
            f"Cache-Control {name} must be a whole number of seconds (digits), got {value!r}",
            param="Cache-Control",
        )
    # a long one without int()'s 4,300-digit limit
    return float(DELTA_SECONDS_MAX if len(digits) > 10 else min(int(digits), DELTA_SECONDS_MAX))


def check_options(options: Any) -> None:
    """Check a request's ``boundgate`` object as serving it would (a batch line at the
    batch's creation). Raises InvalidRequestError naming the field."""
    _parse_options(options)


def _parse_options(options: Any) -> tuple[Mode | None, float | None]:
    if options is None:
        return None, None
    if not isinstance(options, dict):
        raise InvalidRequestError("'boundgate' must be an object", param="boundgate")
    unknown = set(options) - {"reuse", "max_age"}
    if unknown:
        raise InvalidRequestError(
            f"unknown field(s) in 'boundgate': {', '.join(sorted(unknown))}",
            param="boundgate." + sorted(unknown)[0],
        )
    mode = None
    if "reuse" in options:
        try:
            mode = Mode(options["reuse"])
        except ValueError:
            raise InvalidRequestError(
                "'boundgate.reuse' must be one of 'off', 'exact', 'semantic'",
                param="boundgate.reuse",
            ) from None
    max_age = options.get("max_age")
    if max_age is not None and (
        isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age < 0
    ):
        raise InvalidRequestError(
            "'boundgate.max_age' must be a non-negative number of seconds",
            param="boundgate.max_age",
        )
    if max_age is None:
        return mode, None
    # RFC 9111 §1.2.2: a delta-seconds value too large to represent counts as 2^31 (a
    # 400-digit integer overflowed float() into a 500)
    return mode, float(min(max_age, DELTA_SECONDS_MAX))


def plan(
    *,
    temperature: float,
    max_temperature: float,
    query: str | None,
    has_tools: bool,
    cache_control: str | None,
    options: Any,
    time_sensitive: TimeSensitivity,
    time_sensitive_max_age_s: float,
    context: Sequence[str] = (),
) -> Plan:
    """Decide lookup and store for one request. ``context``: the texts of its earlier
    messages (the system prompt among them), read for time sensitivity as the question is.
    Raises 400 on malformed directives."""
    no_cache, no_store, max_age, min_fresh = _parse_cache_control(cache_control)
    mode, body_max_age = _parse_options(options)
    if body_max_age is not None:
        max_age = body_max_age if max_age is None else min(max_age, body_max_age)
    if mode is Mode.OFF or no_store:
        return Plan(Mode.OFF, False, None, "opt-out")
    if query is None:
        return Plan(Mode.OFF, False, None, "no-question")
    if has_tools:
        return Plan(Mode.OFF, False, None, "tools")
    # a follow-up in a time-sensitive conversation ("What's the price of bitcoin?" … "And
    # ethereum?"), or a system prompt that makes every answer one ("You report today's
    # weather"), goes stale with it: its stored answers are in that conversation's scope
    # only, so the lookup's freshness bounds them (a trial was served both after 5 minutes)
    if time_sensitive(query) or any(time_sensitive(text) for text in context):
        limit = max(0.0, time_sensitive_max_age_s - min_fresh)
        max_age = limit if max_age is None else min(max_age, limit)
    if temperature > max_temperature:
        return Plan(Mode.OFF, False, None, "temperature", not no_cache and max_age is None)
    lookup = Mode.OFF if no_cache else (mode or Mode.SEMANTIC)
    return Plan(lookup, True, max_age, "no-cache" if no_cache else "", min_fresh_s=min_fresh)
