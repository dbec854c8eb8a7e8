"""Reuse building blocks: scope keys (property tests), guards, policy, verifier, engine."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boundgate.backends.base import Completion, GenerationRequest, Message, Usage
from boundgate.clock import FakeClock
from boundgate.errors import InvalidRequestError
from boundgate.reuse.embedder import HashEmbedder
from boundgate.reuse.engine import Lookup, ReuseEngine, filed_tokens
from boundgate.reuse.guards import compare
from boundgate.reuse.language import reads_english
from boundgate.reuse.pair import FakePairScorer
from boundgate.reuse.policy import Mode, TimeSensitivity, plan
from boundgate.reuse.refusals import is_refusal
from boundgate.reuse.scope import (
    ReuseKey,
    answer_fits,
    canonical_query,
    exact_hash,
    reuse_key,
    scope_hash,
)
from boundgate.reuse.scoring import CosineScorer, DensityScorer, Evidence
from boundgate.reuse.stored import request_from_json, request_json
from boundgate.reuse.verifier import ENTRY_ONLY, Observation, Verdict, Verifier
from boundgate.settings import ReuseSettings
from boundgate.store import SQLiteStore, StoredEntry
from helpers import engine_lookup, greedy_chat, trusting_verifier

text = st.text(min_size=1, max_size=40)
# questions with something to match (a blank one, or one of format characters only, bypasses
# reuse: no key; the filter is applied below, once ``chat`` is defined)


def chat(
    question: str,
    *,
    system: str = "You are helpful.",
    history: tuple[str, ...] = (),
    stop: tuple[str, ...] = (),
    max_tokens: int = 100,
    seed: int | None = None,
    model: str = "m",
    response_format: str | None = None,
) -> GenerationRequest:
    msgs = [Message("system", system)]
    for i, h in enumerate(history):
        msgs.append(Message("user" if i % 2 == 0 else "assistant", h))
    msgs.append(Message("user", question))
    passthrough = {"response_format": {"type": response_format}} if response_format else {}
    return GenerationRequest(
        model=model,
        messages=msgs,
        max_tokens=max_tokens,
        stop=list(stop),
        seed=seed,
        temperature=0,
        passthrough=passthrough,
    )


def _has_key(q: str) -> bool:
    req = chat(q)
    return (
        reuse_key(req, tenant="t", model_version="v1", endpoint="/v1/chat/completions") is not None
    )


question = text.filter(_has_key)


def key(req: GenerationRequest, tenant: str = "t", version: str = "v1") -> str:
    k = reuse_key(req, tenant=tenant, model_version=version, endpoint="/v1/chat/completions")
    assert k is not None
    return k.scope


@pytest.mark.parametrize("q", ["", "  ", "\ufeff\ufeff", "\u200b", " \u200b\n", "?", "..."])
def test_a_question_with_nothing_to_match_gets_no_key(q: str) -> None:
    """Blank, format characters only (a trial's byte-order marks were stored), or a chat
    question whose exact form is empty: no key, so nothing is stored or served ("?" and "..."
    shared one exact key)."""
    req = chat(q)
    assert reuse_key(req, tenant="t", model_version="v1", endpoint="/v1/chat/completions") is None
    assert key(chat("!!!")) is not None and key(chat("\ufeffhello")) is not None


# --- scope isolation: any difference outside the last question changes the scope -----------
@settings(max_examples=200, deadline=None)
@given(q=question, a=text, b=text)
def test_tenants_never_share_a_scope(q: str, a: str, b: str) -> None:
    assert (key(chat(q), tenant=a) == key(chat(q), tenant=b)) == (a == b)


@settings(max_examples=200, deadline=None)
@given(q=question, a=text, b=text)
def test_system_prompts_never_share_a_scope(q: str, a: str, b: str) -> None:
    assert (key(chat(q, system=a)) == key(chat(q, system=b))) == (a == b)


@settings(max_examples=200, deadline=None)
@given(q=question, a=st.lists(text, max_size=4), b=st.lists(text, max_size=4))
def test_histories_never_share_a_scope(q: str, a: list[str], b: list[str]) -> None:
    assert (key(chat(q, history=tuple(a))) == key(chat(q, history=tuple(b)))) == (a == b)


@settings(max_examples=200, deadline=None)
@given(
    q=question,
    sa=st.lists(text, max_size=3),
    sb=st.lists(text, max_size=3),
    seed_a=st.none() | st.integers(0, 5),
    seed_b=st.none() | st.integers(0, 5),
    fmt_a=st.sampled_from([None, "json_object", "text"]),
    fmt_b=st.sampled_from([None, "json_object", "text"]),
    va=st.sampled_from(["v1", "v2"]),
    vb=st.sampled_from(["v1", "v2"]),
)
def test_params_and_model_versions_never_share_a_scope(
    q: str,
    sa: list[str],
    sb: list[str],
    seed_a: int | None,
    seed_b: int | None,
    fmt_a: str | None,
    fmt_b: str | None,
    va: str,
    vb: str,
) -> None:
    ka = key(chat(q, stop=tuple(sa), seed=seed_a, response_format=fmt_a), version=va)
    kb = key(chat(q, stop=tuple(sb), seed=seed_b, response_format=fmt_b), version=vb)
    # greedy decoding (these requests are at temperature 0) draws nothing a seed could fix;
    # "text" is the default format; a stop sequence twice stops where it does once
    same = set(sa) == set(sb) and (fmt_a or "text") == (fmt_b or "text") and va == vb
    assert (ka == kb) == same
    sampled_a = dataclasses.replace(chat(q, seed=seed_a), temperature=0.7)
    sampled_b = dataclasses.replace(chat(q, seed=seed_b), temperature=0.7)
    assert (key(sampled_a) == key(sampled_b)) == (seed_a == seed_b)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("logit_bias", {}),
        ("presence_penalty", 0),
        ("frequency_penalty", 0.0),
        ("response_format", {"type": "text"}),
        ("modalities", ["text"]),
        ("logprobs", False),
        ("parallel_tool_calls", True),
    ],
)
def test_a_parameter_at_its_default_shares_the_scope_of_none(name: str, value: object) -> None:
    """A helper's audit: `"logit_bias": {}`, `"presence_penalty": 0`, … missed every answer
    stored without them, though they change nothing the model does."""
    plain = chat("Why is the sky blue?")
    given = dataclasses.replace(plain, passthrough={name: value})
    assert key(given) == key(plain)
    other = {"logit_bias": {"50256": -100}, "modalities": ["text", "audio"]}.get(name, 0.5)
    assert key(dataclasses.replace(plain, passthrough={name: other})) != key(plain)
    if not isinstance(value, bool):
        assert key(dataclasses.replace(plain, passthrough={name: False})) != key(plain)


def test_top_p_is_no_part_of_a_greedy_requests_scope() -> None:
    plain = chat("Why is the sky blue?")
    assert key(dataclasses.replace(plain, top_p=0.5)) == key(plain)
    sampled = dataclasses.replace(plain, temperature=0.7)
    assert key(dataclasses.replace(sampled, top_p=0.5)) != key(sampled)


def test_an_answer_cut_short_by_the_context_window_is_filed_as_it_is() -> None:
    """A helper's audit: an answer the context window cut after 5 tokens (``length`` below
    the request's 10) was filed at 10, so a request allowing 10 was served the cut answer
    as if its own limit had cut it, and model "auto" no longer escalated it. Cut at the limit
    (or a token past it: llama.cpp finishing a character) it is filed at the limit."""

    def cut(tokens: int) -> Completion:
        return Completion("a b c d e", "length", Usage(prompt_tokens=3, completion_tokens=tokens))

    assert filed_tokens(cut(5), 10) == 5
    assert not answer_fits("length", filed_tokens(cut(5), 10), 10)
    assert answer_fits("length", filed_tokens(cut(5), 10), 5)  # a limit of 5 cuts it there
    assert filed_tokens(cut(10), 10) == 10 and filed_tokens(cut(11), 10) == 10
    assert answer_fits("length", filed_tokens(cut(11), 10), 10)
    assert filed_tokens(Completion("a b", "stop", Usage(3, 2)), 10) == 2


def test_the_question_itself_is_not_part_of_the_scope() -> None:
    assert key(chat("How do I reset my password?")) == key(chat("password reset how?"))
    # the limit is answer_fits's to check, answer by answer: every limit shares one scope (a
    # trial: an SDK app's max_tokens 2000 never reused what max_tokens 300 stored)
    assert key(chat("q", max_tokens=100)) == key(chat("q", max_tokens=2000))


def test_a_key_carries_the_scope_of_its_limit_class_as_older_scopes_were_made() -> None:
    """``ReuseKey.legacy``: the scope with the ``max_tokens`` class, as answers were stored
    and documents bound before the limit left the scope, hashed exactly as they were."""

    def full(req: GenerationRequest) -> ReuseKey:
        k = reuse_key(req, tenant="t", model_version="v", endpoint="/v1/chat/completions")
        assert k is not None
        return k

    a, b, c = (full(chat("q", max_tokens=n)) for n in (100, 200, 2000))
    assert a.legacy is not None and b.legacy is not None and c.legacy is not None
    assert a.legacy.scope == b.legacy.scope != c.legacy.scope  # 100, 200: one class; 2000 not
    assert a.legacy.scope != a.scope and a.legacy.query == a.query
    assert a.legacy.max_tokens == 100 and a.legacy.legacy is None
    assert a.legacy.scope_doc["params"] == {**a.scope_doc["params"], "max_tokens_class": 256}
    old_doc = {**a.scope_doc, "params": {**a.scope_doc["params"], "max_tokens_class": 256}}
    assert a.legacy.scope == scope_hash("t", old_doc)
    assert a.legacy.exact == exact_hash(a.legacy.scope, "q")


@settings(max_examples=60, deadline=None)
@given(
    tenants=st.lists(st.sampled_from(["acme", "globex", "initech"]), min_size=2, max_size=6),
    systems=st.lists(st.sampled_from(["", "Be brief.", "Answer in French."]), min_size=2),
)
def test_engine_never_serves_across_scopes(
    tmp_path_factory: pytest.TempPathFactory, tenants: list[str], systems: list[str]
) -> None:
    """End to end through the engine: the same question, stored under one scope, is only
    ever served to requests of exactly that scope (similarity 1, so only scope can stop it)."""
    store = SQLiteStore(tmp_path_factory.mktemp("s") / "b.db")
    store.open()
    try:
        engine = ReuseEngine(
            store=store,
            embedder=HashEmbedder(),
            verifier=Verifier(ReuseSettings(initial_threshold=0.5, verify_rate=0.0)),
            settings=ReuseSettings(),
            rebind_window_s=3600.0,
        )

        async def run() -> None:
            stored: set[tuple[str, str]] = set()
            for i, tenant in enumerate(tenants):
                system = systems[i % len(systems)]
                req = chat("what is the capital of france", system=system)
                p, k = engine.plan_for(
                    req, tenant=tenant, model_version="v", endpoint="/e", cache_control=None
                )
                lookup = await engine.lookup(p, k)
                if lookup.hit:
                    assert (tenant, system) in stored
                    assert lookup.entry is not None and lookup.entry.tenant == tenant
                else:
                    assert (tenant, system) not in stored
                    done = Completion(f"answer for {tenant}/{system}", "stop", Usage(5, 5))
                    await engine.remember(
                        lookup,
                        done,
                        tenant=tenant,
                        model="m",
                        model_version="v",
                        cost_wh=0.1,
                        cost_gco2=0.05,
                    )
                    stored.add((tenant, system))

        asyncio.run(run())
    finally:
        store.close()


# --- guards -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "conflict"),
    [
        ("How do I turn on two-factor auth?", "How do I turn off two-factor auth?", "polarity"),
        ("How do I enable dark mode?", "How do I disable dark mode?", "polarity"),
        ("How do I turn on the lights?", "How do I turn off the lights?", "polarity"),
        ("Should I leave on the heater?", "Should I leave off the heater?", "polarity"),
        ("Is the oven on?", "Is the oven off?", "polarity"),
        ("Should I keep my phone on at night?", "Should I keep my phone off at night?", "polarity"),
        ("is my wifi on or not", "is my wifi off or not", "polarity"),
        # a re-check's: switched on by one word, off by another, "on <device>" beside them
        (
            "How do I enable dark mode on my iPhone?",
            "How do I turn off dark mode on my iPhone?",
            "polarity",
        ),
        (
            "How can I enable Siri on my iPhone?",
            "How can I turn off Siri on my iPhone?",
            "polarity",
        ),
        (
            "How do I disable comments on YouTube?",
            "How do I turn comments on on YouTube?",
            "polarity",
        ),
        # on / off after its object, before a preposition or an adverb, is the state
        (
            "How do I turn on bluetooth?",
            "How do I turn bluetooth off from the control center?",
            "polarity",
        ),
        (
            "How can I switch wifi on?",
            "How can I switch wifi off via the settings app?",
            "polarity",
        ),
        ("How do I turn on 2FA?", "How do I turn 2FA off on Instagram?", "polarity"),
        (
            "Should I leave the heater on?",
            "Should I leave the heater off to save money?",
            "polarity",
        ),
        # an audience of people with an adjective (a re-check was served "What is inflation?")
        ("What is inflation?", "Explain inflation to ordinary people", "contrast"),
        ("What is a mortgage?", "Explain mortgages to regular people", "contrast"),
        (
            "why does my battery drain faster on wifi",
            "why does it drain faster off wifi",
            "polarity",
        ),
        ("What is on-page SEO?", "What is off-page SEO?", "polarity"),
        ("Why is my phone charging?", "Why is my phone not charging?", "negation"),
        ("91 prime or not?", "is not 91 a prime number", "negation"),
        # kitchen measures are units (the chat-trained pair model scores this 0.996)
        ("how many tbsp in a cup", "How many teaspoons are in a cup?", "unit"),
        # a scale letter at the end of a question about temperature (a chat stream's miss)
        ("water boils at what temperature in F", "water boiling point celsius", "unit"),
        # a trial's wrong reuses (2026-12-02): "w/o" is "without"; offices; a reset erases
        ("how to make pancakes w/o eggs", "How do I make pancakes with eggs?", "negation"),
        ("Who is the president of France?", "who is the prime minister of france", "office"),
        ("hey how can i factory reset my iphone", "How do I restart my iPhone?", "action"),
        # the opposite conversion in a fragment or another wording (a trial's wrong reuses)
        ("How many quarts are in a cup?", "cups in a quart?", "unit"),
        ("How many quarts are in a cup?", "how many cups make a quart", "unit"),
        ("Why doesn't my code compile?", "Why does my code compile?", "negation"),
        ("What is 15% of 200?", "What is 25% of 200?", "number"),
        # one of a unit said with "1" on one side only: still another count than "2 cups"
        ("how many tbsp in 1 cup", "How many tablespoons are in 2 cups?", "number"),
        ("How can I join the 1%?", "How can I join the top earners?", "number"),
        # a "2" or "4" the other side does not read as "to" / "for" stays a number
        ("how to add 2 eggs", "how to add eggs", "number"),
        ("tips for 4 people", "tips for people", "number"),
        ("convert 2 miles to km", "convert miles to km", "number"),
        # a scale's letter glued to a temperature: the other side must measure it in that scale
        ("bake at 400F", "bake at 400 °C", "number"),
        ("30f in c?", "Convert 30 degrees Celsius to Fahrenheit.", "number"),
        # one change of a comparison alone: the things compared or the comparative
        ("Is Jupiter bigger than Earth?", "Is Earth bigger than Jupiter?", "order"),
        ("Is Paris more expensive than Berlin?", "Is Paris cheaper than Berlin?", "polarity"),
        ("Is Jupiter bigger than Earth?", "Earth is smaller than Jupiter.", "mood"),
        ("Is water denser than oil?", "Is water less dense than oil?", "polarity"),
        ("is it safer to fly", "is it less safe to fly", "polarity"),
        ("Best laptop under 500 dollars", "Best laptop under five hundred dollars", "number"),
        ("Who won the world cup in 2018?", "Who won the world cup in 2022?", "date"),
        ("How far is 10 km in steps?", "How far is 10 miles in steps?", "unit"),
        ("How do I learn Python fast?", "How do I learn Java fast?", "entity"),
        ("Enabling dark mode on Android", "Disabling dark mode on Android", "polarity"),
        ("Is it likely to rain tomorrow?", "Is it unlikely to rain tomorrow?", "negation"),
        ("Is this plugin harmful?", "Is this plugin harmless?", "negation"),
        ("How do I overclock my GPU?", "How do I underclock my GPU?", "polarity"),
        ("What is the fastest sort?", "What is the slowest sort?", "polarity"),
        ("Best gift you have ever received?", "Best gift you have ever given?", "polarity"),
        ("Calculate 5!", "Calculate 5", "number"),
        ("What is x² if x is 3?", "What is x2 if x is 3?", "literal"),
        ('What does print("Hi") output?', 'What is the output of print("hi")?', "literal"),
        ("Is 'ABC' in uppercase?", "Is 'abc' in uppercase?", "literal"),
        ("Why did my order fail to arrive?", "Why did my order arrive?", "negation"),
        ("How do I convert a list to a tuple?", "How do I convert a tuple to a list?", "order"),
        ("Is a lion stronger than a tiger?", "Is a tiger stronger than a lion?", "order"),
        # the question word is the object on one side, the subject on the other (a trial's
        # finding: the pair model scored these 0.95-0.99)
        ("What does inflation cause?", "What causes inflation?", "order"),
        ("What is glass made of?", "What is made of glass?", "order"),
        ("What can dogs smell?", "What can smell dogs?", "order"),
        ("What do vaccines protect against?", "What protects against vaccines?", "order"),
        ("Which team did Brazil beat?", "Which team beat Brazil?", "order"),
        ("Who do lions eat?", "Who eats lions?", "order"),
        # a third trial: conversions and operations the other way round, "is A a B", a
        # statement without its full stop; case typed in lower case still counts in a
        # question about form
        (
            "What is 30 degrees Celsius in Fahrenheit?",
            "What is 30 degrees Fahrenheit in Celsius?",
            "unit",
        ),
        ("How many seconds are in an hour?", "How many hours are in a second?", "unit"),
        ("What is 10 divided by 2?", "What is 2 divided by 10?", "order"),
        ("Is a square a rectangle?", "Is a rectangle a square?", "order"),
        ("Do vaccines cause autism?", "Vaccines cause autism", "mood"),
        ("is hello capitalized", "Is Hello capitalized?", "literal"),
        # an operation on the text after it, and a question about its own kind (a trial's)
        ("Reverse the string Hello", "Reverse the string hello", "literal"),
        ("Is this a question or a statement?", "Is this a question or a statement.", "literal"),
        ("Can I take aspirin while pregnant?", "Should I take aspirin while pregnant?", "modality"),
        ("Do all mammals lay eggs?", "Do any mammals lay eggs?", "quantity"),
        ("Name one planet with rings.", "Name all planets with rings.", "quantity"),
        ("What is Rust?", "What is rust?", "literal"),
        # a statement asks for another reply than its question (a second trial: 0.964, served)
        ("Is the earth flat?", "The earth is flat.", "mood"),
        ("Is coffee good for you?", "Coffee is good for you.", "mood"),
        # operators made of symbols alone (a second trial: "??" / "?." served by meaning)
        ("What does the ?? operator do", "What does the ?. operator do", "literal"),
        ("What does ... mean in Python?", "What does .. mean in Python?", "literal"),
        # the same question in another tense (a second trial: pair scores 0.93-0.99, served)
        ("Who is the king of England?", "Who was the king of England?", "tense"),
        ("Who won the world cup?", "Who will win the world cup?", "tense"),
        ("How do I become a doctor?", "How did I become a doctor?", "tense"),
        ("Who invented the telephone?", "Who will invent the telephone?", "tense"),
        ("How many people live in Tokyo?", "How many people lived in Tokyo?", "tense"),
        # what is asked of the same word (a trial's finding: pair score 0.956)
        ("How do you spell necessary?", "How do you pronounce necessary?", "task"),
        ("What is the meaning of serendipity?", "What is the origin of serendipity?", "task"),
        # another phrase asked in a language (a break-it trial's wrong reuse: pair score 0.90)
        ("How do I say you're welcome in Japanese?", "How do I say thank you in Japanese?", "task"),
        ("What is hello in German?", "What is goodbye in German?", "task"),
        ("how to say I love you in Spanish", "how do you say I miss you in Spanish", "task"),
        ("the Spanish word for embarrassed", "what does embarazada mean in Spanish", "task"),
        # a re-check's frames, served before (pair scores 0.94-0.98), and small words
        ("How do I say thank you in Japanese?", "How is you're welcome said in Japanese?", "task"),
        ("How do I say thank you in Japanese?", "What's the Japanese for you're welcome?", "task"),
        (
            "How do I say thank you in Japanese?",
            "How would I tell someone you're welcome in Japanese?",
            "task",
        ),
        (
            "How do you say thank you in Japanese?",
            "How do you say thank you very much in Japanese?",
            "task",
        ),
        # a number that is part of a name: another name (the guards saw no number in them)
        ("What is a 401k?", "What is a 403b?", "number"),
        ("What is 4G?", "What is 5G?", "number"),
        ("Is a 3D printer worth it?", "Is a 2D printer worth it?", "number"),
        ("Is a 16GB phone enough?", "Is a 32GB phone enough?", "number"),
        ("Is 4G faster than 5G?", "Is 5G faster than 4G?", "order"),
        ("When did WW2 end?", "When did WW1 end?", "number"),
        # a kind named by a glued number ("3D") is no count, but a count still is, and two
        # kinds, or another model, still differ (a user's trial: ``glued_kinds``)
        (
            "How do I fix stringing on my 3D printer?",
            "How do I fix stringing on 3 printers?",
            "number",
        ),
        (
            "I have 3 printers, which should I sell?",
            "I have 2 printers, which should I sell?",
            "number",
        ),
        ("How do I declare a 2D array in C?", "How do I declare 2D and 3D arrays in C?", "number"),
        ("Is a PS5 better than a PS4?", "Is a PS5 better than a PS3?", "number"),
        ("iPhone 12 vs iPhone 13 camera", "iPhone 12 vs iPhone 14 camera", "number"),
        ("is 5G faster than 4G", "is 5G faster than 3G", "number"),
        (
            "what are the symptoms of low vitamin B12",
            "what are the symptoms of low vitamin B",
            "number",
        ),
        # ... and one named on one side only is still a number (a re-check of a rule that
        # let one side leave it out: a 3D printer's price is no paper printer's)
        ("How much does a 3D printer cost?", "How much does a printer cost?", "number"),
        ("How do I sort a 2D array in Java?", "How do I sort an array in Java?", "number"),
        # a span named by words counts its unit: another count still differs, and "an hour
        # and a half" is no half hour though every word is the same (a re-check: 0.919)
        ("Should I feed my puppy every half hour?", "Should I feed my puppy every hour?", "number"),
        (
            "How far can I walk in an hour and a half?",
            "How far can I walk in half an hour?",
            "number",
        ),
        # a comparative made with "less" is the other side of its pair (a run on chatbot
        # paraphrases served "... stronger"'s answer for "... less strong")
        ("how to make my coffee less strong", "how to make my coffee stronger", "polarity"),
        ("How do I make coffee less strong?", "How do I make coffee strong?", "polarity"),
        ("Is renting less expensive?", "Is renting more expensive?", "polarity"),
        # opposites of distance, direction, amount and change ("farther" grades "far"; the
        # cosine alternative served held-out ones on a stream of chatbot paraphrases)
        (
            "Is the comet getting nearer to the sun?",
            "Is the comet getting farther from the sun?",
            "polarity",
        ),
        (
            "Are we moving closer to a recession?",
            "Are we moving farther from a recession?",
            "polarity",
        ),
        (
            "why do sunflowers turn toward the sun",
            "why do sunflowers turn away from the sun",
            "polarity",
        ),
        ("Is the economy in expansion?", "Is the economy in contraction?", "polarity"),
        ("signs of iron deficiency", "signs of iron excess", "polarity"),
        ("what if i drink too much coffee", "what if i drink too little coffee", "polarity"),
        ("Is there a shortage of nurses?", "Is there a surplus of nurses?", "polarity"),
        ("Will the dollar appreciate?", "Will the dollar depreciate?", "polarity"),
        ("How do I improve my handwriting?", "How do I worsen my handwriting?", "polarity"),
        # distance and motion a second trial found past the guards (pair 0.61-0.90)
        ("Is Earth moving nearer to the Sun?", "Is Earth moving further from the Sun?", "polarity"),
        ("Are galaxies moving closer together?", "Are galaxies moving further apart?", "polarity"),
        (
            "How do I pull into a parking space?",
            "How do I pull out of a parking space?",
            "polarity",
        ),
        ("How do I get in a kayak?", "How do I get out of a kayak?", "polarity"),
        ("How do I get onto the highway?", "How do I get off the highway?", "polarity"),
        (
            "How do I board a plane in a wheelchair?",
            "How do I disembark a plane in a wheelchair?",
            "polarity",
        ),
        ("Why is there a glut of housing?", "Why is there a scarcity of housing?", "polarity"),
        (
            "Is it bad to sit too close to a screen?",
            "Is it bad to sit too far from a screen?",
            "polarity",
        ),
        # posture and motion in a described scene (the contradictions of SICK-style
        # sentence pairs)
        ("A man is sitting on a bench", "A man is standing on a bench", "polarity"),
        ("The man is getting into the car", "The man is getting out of the car", "polarity"),
        ("A plane is taking off", "A plane is landing", "polarity"),
        ("The woman is entering the room", "The woman is exiting the room", "polarity"),
        ("A boy is going into the water", "A boy is coming out of the water", "polarity"),
        ("A man is laughing", "A man is crying", "polarity"),
        # an answer's length asked as a level (a held-out chatbot look-alike, pair 0.93)
        (
            "french revolution in one sentence pls",
            "summarize the french revolution in detail",
            "contrast",
        ),
        # powers, products and versions glued or in words
        ("What is 9 squared?", "What is 9 cubed?", "number"),
        ("how many tiles for a 10x10 floor", "how many tiles for a 12x12 floor", "number"),
        ("Is the PS4 backward compatible?", "Is the PS5 backward compatible?", "number"),
        ("What is 5 factorial?", "What is 5 squared?", "number"),
        # another kind of reply asked for (a trial of the default deployment was served
        # these, pair scores 0.91-0.94)
        ("How did World War II end?", "What year did WW2 end?", "mood"),
        (
            "What year did the Roman Empire fall?",
            "What led to the fall of the Roman Empire?",
            "mood",
        ),
        ("Why did the Roman Empire fall?", "When did the Roman Empire fall?", "mood"),
        ("Who invented the telephone?", "When was the telephone invented?", "mood"),
        ("How many people died in WW1?", "Why did so many people die in WW1?", "mood"),
        (
            "How tall is the tallest mountain in North America?",
            "What is the tallest mountain in North America?",
            "mood",
        ),
        # another aspect of a condition, another version control operation (the same trial)
        ("What are the causes of the flu?", "What are the symptoms of the flu?", "contrast"),
        ("How do I undo the last git pull?", "How do I undo the last git commit?", "contrast"),
        ("How do I undo the last git revert?", "How do I undo the last git commit?", "contrast"),
        ("How do I redo the last git commit?", "How do I undo the last git commit?", "polarity"),
        ("What is 2 times 3?", "What is 3 times 3?", "number"),
        # speeds are units, "km/h" one of them (a chat stream's wrong reuse)
        ("30 km/h in mph pls", "30 mph to kmh", "unit"),
        ("how fast can a cheetah run in mph", "how fast can a cheetah run in km/h", "unit"),
        (
            "Which foods can increase blood pressure?",
            "Which foods can lower blood pressure?",
            "polarity",
        ),
        ("How can I lower my blood pressure?", "How can I raise my blood pressure?", "polarity"),
        # names of languages and systems, whatever their case (a trial's wrong reuses, pair
        # scores 0.94-0.95)
        ("How do I reverse a list in JavaScript?", "how do i reverse a list in java", "entity"),
        (
            "how do i print hello world in java",
            "how do i print hello world in javascript",
            "entity",
        ),
        ("connect python to mysql", "connect python to postgresql", "entity"),
        ("how to reverse a list in c++", "how to reverse a list in c#", "entity"),
        # a place's adjective inside a longer name is that name's, not the place's
        (
            "How many countries are in Europe?",
            "How many countries are in the European Union?",
            "entity",
        ),
        ("Where is the Indian Ocean?", "Where is India?", "entity"),
        ("What is the history of France?", "What is German history?", "entity"),
        (
            "Do I need a visa for Japan as a US citizen?",
            "Visa for the US as a Japanese citizen?",
            "order",
        ),
        # a number against a list; what a command acts on; where food is kept (a trial's
        # wrong reuses, pair scores 0.90-0.98)
        ("How many countries border Germany?", "What countries border Germany?", "task"),
        (
            "How many countries border Germany?",
            "which countries share a border with germany",
            "task",
        ),
        (
            "How do I copy a file to a server with scp?",
            "How do I copy a folder to a server with scp?",
            "contrast",
        ),
        (
            "How long does cooked chicken last in the freezer?",
            "How long does cooked chicken last in the fridge?",
            "contrast",
        ),
        (
            "How do I undo the last git commit but keep the changes?",
            "How do I undo the last git commit and discard the changes?",
            "polarity",
        ),
        # Latin's in- still negates an adjective
        ("Is this answer correct?", "Is this answer incorrect?", "negation"),
        ("Is a used car expensive to insure?", "Is a used car inexpensive to insure?", "negation"),
        # a trial's wrong reuses (2026-12-04): a letter named in lower case, roles swapped
        # around "of" on both sides, into / an arrow as "to"
        (
            "d major key signature how many sharps",
            "how many sharps are in the key of A major",
            "entity",
        ),
        ("vitamin d deficiency symptoms", "vitamin c deficiency symptoms", "entity"),
        ("hepatitis b vaccine schedule", "hepatitis a vaccine schedule", "entity"),
        ("plan b side effects", "Plan C side effects", "entity"),
        ("what is the relative major of C minor", "what is the relative minor of C major", "order"),
        ("python list -> tuple", "how to convert a tuple to a list in python", "order"),
        ("python list → tuple", "how to convert a tuple to a list in python", "order"),
        # an acronym that is a function word in lower case (a trial was served both, 0.98+)
        ("what is the meaning of WHO", "what is the meaning of who", "literal"),
        ("what does IT mean", "what does it mean", "literal"),
        # the unit "how many" asks for stands for another named on the other side (a
        # re-check's finding after the rule that lets it stand alone)
        ("how many miles is a marathon", "marathon distance in km", "unit"),
        ("how many minutes does it take to boil an egg", "seconds to boil an egg", "unit"),
        ("how many mph is 100 kmh", "100 kmh in knots", "unit"),
        (
            "how do I turn a python list into a tuple",
            "how to convert a tuple to a list in python",
            "order",
        ),
        # the two things around "after" / "before" / "to" exchanged, one side a search-box
        # form (a trial's ensemble served these at 0.90-0.99)
        ("Is it bad to eat right after sleeping?", "sleep after eating bad?", "order"),
        (
            "Is it bad to have lunch right after a nap?",
            "Is it bad to nap right after lunch?",
            "order",
        ),
        ("Should I run before stretching?", "stretch before running?", "order"),
        (
            "wait to eat after swimming how long",
            "How long should I wait to swim after eating?",
            "order",
        ),
        ("how to convert word to pdf", "pdf to word converter", "order"),
        # "into" converts as "to" does, a data type by its short name in code (chat_heldout's
        # end-to-end run served the first the second's answer)
        ("Java: how do I parse a String into an integer?", "java convert int to string?", "order"),
        ("turn a dict into a list python", "python list to dictionary", "order"),
        # a unit however it is written (a trial's reversed conversions passed)
        ("how do I convert kg to lbs", "how to convert pounds to kilograms", "order"),
        ("convert miles to km", "convert kilometers to miles", "order"),
        ("convert acres to hectares", "convert ha to acres", "order"),
        ("convert horsepower to kilowatts", "convert kW to hp", "order"),
        ("convert psi to kPa", "convert kilopascals to psi", "order"),
        # "X-free" is "without X"; over- and de- are opposites (a user's trial was served these)
        (
            "chemical-free way to unblock a sink",
            "how do I unclog a sink with chemicals?",
            "negation",
        ),
        ("gluten-free bread recipe", "bread recipe with gluten", "negation"),
        ("signs of being dehydrated", "What are the symptoms of overhydration?", "polarity"),
        ("How many kilobytes in a megabyte?", "How many MB in a KB?", "unit"),
        # a stopping verb matches "not" only for the verb it stops
        ("how to teach my dog not to bite", "how to stop my dog from barking", "negation"),
        # ... nor a "not" asked why of: the cause of an absence, not a remedy for the thing
        ("why does my dog not bark", "how do I stop my dog barking", "negation"),
        ("Why is my cat not eating?", "What can I do to stop my cat eating?", "negation"),
        # a user's trial's pair (0.91): why it does not, and how to stop it (left vetoed)
        (
            "Why does my bathroom mirror not mist over?",
            "How do I stop my bathroom mirror fogging up?",
            "negation",
        ),
        # beside the readings of "least", "yes or no", glued powers and rates: still vetoed
        # (a re-check's: a conversion turned round with one side glued, another period than
        # a day on one side only, "least X" against a standalone "most")
        ("How many cubic meters in a square meter?", "How many m2 in a m3?", "order"),
        ("convert square meters to square feet", "convert ft2 to m2", "order"),
        (
            "How many hours of sleep do I need per week?",
            "How many hours of sleep do I need?",
            "unit",
        ),
        ("How many days a month do nurses work?", "How many days do nurses work?", "unit"),
        (
            "Which car is least expensive to insure?",
            "Which car costs the most to insure?",
            "polarity",
        ),
        ("least expensive way to fly", "most expensive way to fly", "polarity"),
        ("What do you enjoy most/least about your job?", "What do you enjoy least?", "polarity"),
        # a search-box form against a question with one "of", two words exchanged (a user's
        # trial was served it at 0.991)
        ("C major relative minor", "What is the relative major of C minor?", "order"),
        # two names exchanged around a word, other small words on each side (Quora's, served)
        (
            "If Pakistan attack to India what will happen?",
            "What happen if India attack on Pakistan?",
            "order",
        ),
        ("Can Russia defeat NATO?", "Can NATO defeat Russia in a war?", "order"),
        ("apple m2 chip speed", "apple m3 chip speed", "number"),
        ("how many square feet in an acre", "how many cubic feet in an acre", "number"),
        ("is it safe yes or no", "is it not safe", "negation"),
        (
            "hours a 2-year-old should sleep per day",
            "hours a 2-year-old should sleep per week",
            "unit",
        ),
        (
            "How many hours of sleep does a toddler need?",
            "How many naps a day does a toddler need?",
            "unit",
        ),
        ("How can I make 1 million in 1 year?", "How do you make $1 million in a day?", "unit"),
        # "keep V-ing" is no stopping (only "keep … from V-ing" is); not stopping is against
        # not keeping on, the negations matched (a re-check was served the second at 0.98);
        # a reading of "won't stop V-ing" as "keeps V-ing" was tried and dropped (it let
        # "won't stop dripping" / "has ceased dripping" and dozens of others through)
        ("how to make my puppy not bite", "my puppy keeps biting", "negation"),
        ("the tap won't stop leaking", "the tap doesn't keep leaking", "polarity"),
        ("my toilet doesn't keep running", "my toilet won't stop running", "polarity"),
        ("my dog won't stop barking", "my dog stopped barking", "negation"),
        ("the faucet won't stop dripping", "the faucet has ceased dripping", "negation"),
        # a time to do something is no amount (a trial's wrong reuse, pair 0.969), also
        # asked inside a search-box query
        ("How much creatine should I take per day?", "creatine when to take", "mood"),
        ("vitamin d how much", "vitamin d when to take", "mood"),
        ("When should I water tomatoes?", "How much water do tomatoes need?", "mood"),
        # a time of day written glued or dotted is still the time it is
        ("Why do I wake up at 3am?", "why do i wake up at 3 p.m.", "number"),
        # ... and its half of the day stays with it (a re-check: written apart, "am" read as
        # a form of "be", and the swap passed)
        ("Is it safe to run at 5am or 9pm?", "Is it safe to run at 5pm or 9am?", "number"),
        ("Does the store open at 8:30am?", "does the store open at 9:30 am", "number"),
        # preventing against putting right (a trial was served the first, pair 0.941)
        (
            "How do I prevent my 3D printer nozzle from clogging?",
            "What's the way to clear a blocked nozzle on my 3D printer?",
            "polarity",
        ),
        ("how to remove rust from garden tools", "how to prevent rust on garden tools", "polarity"),
        # ... and as participles (a re-check was served it at 0.940)
        ("Can gum disease be prevented?", "Can gum disease be cured?", "polarity"),
        # keeping from getting is preventing (a trial was served it at 0.898)
        (
            "What can I do to keep from getting shin splints from running?",
            "How do I treat shin splints from running?",
            "polarity",
        ),
        (
            "How do I avoid getting blisters when hiking?",
            "How do I treat blisters from hiking?",
            "polarity",
        ),
        # when within a span, one word apart (a trial was served the first, pair 0.912)
        (
            "Should I use heat on a sprain after the first 48 hours?",
            "Should I use heat on a sprain in the first 48 hours?",
            "contrast",
        ),
        (
            "Is spotting normal in the first trimester?",
            "Is spotting normal after the first trimester?",
            "contrast",
        ),
        # who does what to whom, said by pronouns alone
        (
            "Can I see if someone viewed my Instagram story?",
            "Can someone see if I viewed their Instagram story?",
            "order",
        ),
        (
            "how do I tell him I don't love him anymore",
            "how do I tell him he doesn't love me anymore",
            "order",
        ),
        ("Should I text her if she ignored me?", "Should she text me if I ignored her?", "order"),
        (
            "I'm 40 and she is 30, can we still have kids?",
            "she is 40 and I'm 30, can we still have kids?",
            "order",
        ),
        # ... with a verb agreeing with each, or a possessive naming a party again
        (
            "My mom has diabetes, what are the chances I will get it?",
            "I have diabetes, what are the chances my mom will get it?",
            "order",
        ),
        (
            "Is the groom expected to pay for his groomsmen's suits?",
            "Are the groomsmen expected to pay for the groom's suit?",
            "order",
        ),
        # a negation moved, the verbs agreeing
        (
            "What do I do if a tenant pays but doesn't move out?",
            "What do I do if a tenant doesn't pay but moves out?",
            "negation",
        ),
        # finding out whether against doing
        (
            "How do I check if my tires have enough air?",
            "How do I put enough air in my tires?",
            "task",
        ),
        ("how to tell if my phone has a virus", "how to remove a virus from my phone", "task"),
        ("Ways to tell if a mango is ripe", "Ways to ripen a mango", "task"),
        (
            "How to find out if my lawn needs iron?",
            "How to find a good iron supplement for my lawn?",
            "task",
        ),
        # a party named by a noun against a pronoun, the verbs agreeing
        (
            "Why does my boyfriend get jealous when I go out with friends?",
            "Why do I get jealous when my boyfriend goes out with friends?",
            "order",
        ),
        # whether it is safe against whether it is best
        (
            "is it safe to leave my phone charging overnight",
            "is it best to leave my phone charging overnight",
            "contrast",
        ),
        # a weekday in the plural is still not another day
        ("is the library open on saturdays", "is the library open on sunday", "date"),
        # a people and a place exchanged
        (
            "Can Canadians work in Australia without a visa?",
            "Can Australians work in Canada without a visa?",
            "order",
        ),
    ],
)
def test_guards_veto_what_embeddings_miss(a: str, b: str, conflict: str) -> None:
    c = compare(a, b)
    assert conflict in c.conflicts, c
    assert conflict in compare(b, a).conflicts


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I reset my password?", "How can I reset my password?"),
        ("how do I convert kg to lbs", "how to convert kilograms to pounds"),
        ("gluten-free bread recipe", "bread recipe without gluten"),
        ("what breaks down the lactose in lactose-free milk", "lactose in lactose free milk?"),
        ("sugar-free cookies", "cookies with no sugar"),
        ("feel free to ask", "feel free to ask me"),
        # a unit one side names by a short form the guards do not read (a re-check's)
        ("convert psi to pascals", "convert psi to Pa"),
        ("how many watts in a horsepower", "how many W in one hp"),
        ("best hp laptop", "best HP laptop for students"),
        # "less" + an antonym pair's member is its other side; "more" + it is its comparative
        ("How do I make my coffee less strong?", "How do I make my coffee weaker?"),
        ("Is renting less expensive than buying?", "Is renting cheaper than buying?"),
        ("Is a lion more strong than a tiger?", "Is a lion stronger than a tiger?"),
        ("What is the best way to learn Python?", "How should I learn Python?"),
        # one leaves or enters a comment; "further" is mostly "more" (a review's findings)
        ("How do I leave a comment in Google Docs?", "How do I enter a comment in Google Docs?"),
        ("Can you take a closer look at this code?", "Can you look further into this code?"),
        ("Can I expand my phone contract?", "How do I extend my phone contract?"),
        # "how far", "so far", "by far" ask or qualify: no side of near / far
        ("How far is the closest hospital?", "How far is the nearest hospital?"),
        ("Which is by far the best phone?", "Which phone is the best by far?"),
        ("How do I get in touch with support?", "How can I get in touch with support?"),
        # "into" and "out of" alone are no opposites
        ("How do I make a bowl out of clay?", "How do I turn clay into a bowl?"),
        # "best" is no grade of "bad" (irregular grades are only far's)
        ("What is the best way to break bad habits?", "How do I break bad habits?"),
        ("Is the comet getting nearer to the sun?", "Is the comet getting closer to the sun?"),
        ("symptoms of too much vitamin A", "signs of excessive vitamin A"),
        # kinds of reply a paraphrase keeps: an amount asked as how long / how many days, a
        # reason as how come, a manner as where / why; a relative "who" asks for no person
        ("How long does the flu last?", "How many days does the flu last?"),
        ("How come the sky is blue?", "Why is the sky blue?"),
        ("How do I find my IP address?", "Where do I find my IP address?"),
        ("How does a rainbow form?", "Why do rainbows appear?"),
        ("When should I use a semicolon?", "How do I use a semicolon correctly?"),
        ("When did WW2 end?", "In what year did World War 2 end?"),
        ("What is the largest planet?", "Which planet is the biggest?"),
        (
            "How many scientists believe in evolution?",
            "Percentage of scientists who believe in evolution?",
        ),
        ("How do I lose weight in 2 weeks?", "How can I lose weight in two weeks?"),
        ("Why can't I sleep at night?", "Why can I not sleep at night?"),
        # a polar "or not" asks both ways: no negation (quora_val: 8 duplicates it vetoed)
        ("Are mediums real?", "Are mediums real or not?"),
        ("normal body temp in C", "normal body temperature in celsius"),
        ("how to make pancakes w/o eggs", "How do I make pancakes without eggs?"),
        ("how to reboot my iphone", "How do I restart my iPhone?"),
        ("how many cups in a quart", "cups per quart"),
        # "1" of a unit is what "a cup" / "one cup" says (held-out chat paraphrases it vetoed)
        ("how many tbsp in 1 cup", "How many tablespoons are in a cup?"),
        ("1 inch in cm", "How many centimeters is an inch?"),
        ("How many grams is one cup of flour?", "1 cup all purpose flour in grams?"),
        ("How can I lose 5 kg in one month?", "How can I lose 5 kg in 1 month?"),
        # a digit typed for "to" / "for" beside the word the other side puts there
        ("how 2 make pasta", "How to make pasta?"),
        ("convert 5 miles 2 km", "convert 5 miles to km"),
        ("is coffee bad 4 u", "Is coffee bad for you?"),
        ("do i need 2 tip movers", "do i need to tip movers"),
        ("30c in f?", "Convert 30 degrees Celsius to Fahrenheit."),
        ("How long to bake chicken at 400F?", "How long to bake chicken at 400 °F?"),
        # a comparison turned round: both things swapped and the comparative its opposite
        ("Is Jupiter bigger than Earth?", "Is Earth smaller than Jupiter?"),
        ("Is the Nile longer than the Amazon?", "Is the Amazon shorter than the Nile?"),
        ("is android better than iphone for privacy", "is iphone worse than android for privacy"),
        ("Is water denser than oil?", "Is oil less dense than water?"),
        ("10 miles in km", "How many kilometers is 10 miles?"),
        ("Who won the world cup?", "Who won the FIFA world cup?"),
        ("Who is the CEO of Tesla?", "tesla ceo?"),
        ("how to print hello world in C", "how do I print hello world in C?"),
        ("is 91 a prime number", "91 prime or not?"),
        # a negating affix is a negation: these agree
        ("How long do eggs last if not refrigerated?", "How long do unrefrigerated eggs last?"),
        ("Can you un-merge two questions?", "How do you unmerge two questions?"),
        # reordering is not swapping roles
        ("How do I fly from Rome to Oslo cheaply?", "How do I fly cheaply to Oslo from Rome?"),
        ("What is the best way to learn programming?", "How do you learn to program?"),
        ("How hot is the surface of the sun?", "The sun's surface is how hot?"),
        # a unit on one side only is no conflict (the numbers agree)
        ("Best phone under 15000 rupees?", "What is the best phone under 15000?"),
        # the question word keeps its role: a passive with "by", "which thing is", a
        # superlative, a small word or an adverb moved, an auxiliary moved
        ("What does inflation cause?", "What is caused by inflation?"),
        ("Who invented the telephone?", "Who was the telephone invented by?"),
        ("What colour is the sky?", "What is the sky colour?"),
        ("Which country has the most population?", "Which is the most populated country?"),
        ("What is dating in Australia like?", "What is dating like in Australia?"),
        (
            "What is the best way to learn Python quickly?",
            "What is the best way to quickly learn Python?",
        ),
        ("Which laptop should I buy?", "Which laptop I should buy?"),
        ("What does love mean?", "What love means?"),
        ("What does serendipity mean?", "What is the meaning of serendipity?"),
        ("What's the capital of France?", "What is the capital of France?"),
        ("What is the ?? operator?", "What does the ?? operator do?"),
        # a third trial's over-vetoes: a passive, an operator before "?", a lower-case typist,
        # a unit's name and symbol
        ("How are exceptions handled in C++?", "How does C++ handle exceptions?"),
        ("How are rainbows formed?", "How do rainbows form?"),
        (
            "What is the difference between == and === in JavaScript?",
            "In JavaScript, how does == differ from ===?",
        ),
        ("what is dna", "What is DNA?"),
        ("how do i install node.js on windows?", "How do I install Node.js on Windows?"),
        ("How many centimeters are in an inch?", "How many cm are in an inch?"),
        ("What is 100 degrees Fahrenheit in Celsius?", "Convert 100°F to Celsius."),
        ("What is 2 + 3?", "What is 3 + 2?"),
        # a fourth trial: "how many X in Y" turned around keeps its question
        ("How many seconds are in an hour?", "an hour has how many seconds?"),
        ("Convert 5 kilometers to miles", "how many miles is 5 km"),
        ("What is twenty five divided by five?", "25 / 5?"),
        ("Can you share the image?", "Will you share the image?"),
        ("How can I surprise my husband?", "How should I surprise my husband?"),
        ("Is the earth flat?", "Is the earth flat or round?"),
        ("Tell me if the earth is flat.", "Is the earth flat?"),
        (
            "Who is better - Taylor Swift or Katy Perry?",
            "Who is better, Taylor Swift or Katy Perry?",
        ),
        # a number glued to its unit, a letter in parentheses, a short form of one name
        ("Is a 16GB phone enough?", "Is a 16 GB phone enough?"),
        ("How does a 401(k) match work?", "How do 401k matches work?"),
        ("What is a closure in JS?", "What is a closure in JavaScript?"),
        ("When did World War II end?", "When did WW2 end?"),
        ("What caused World War I?", "What caused WWI?"),
        # blocks moved that keep their roles (_blocks_exchanged)
        ("How do I fly from Rome to Oslo cheaply?", "How do I fly cheaply to Oslo from Rome?"),
        ("The speed of light is how fast?", "how fast is the speed of light"),
        ("Which is better, Python or Java?", "Which is better, Java or Python?"),
        ("What is 2 plus 3?", "What is 3 plus 2?"),
        # sentences moved, or changed in small words only (_sentence_changed)
        ("I am vegetarian. What should I eat?", "What should I eat? I am vegetarian."),
        ("I need a new job. What should I do?", "I needed a new job. What should I do?"),
        ("What are ribosomes? What is their main job?", "What are ribosomes? What do they do?"),
        # a number glued, a power in words, a factorial in words, a name written apart
        ("What is 6 times 9?", "6x9"),
        ("integral of x cubed", "integral of x^3"),
        ("How do I fill out a W-4?", "how to fill out a w4"),
        ("how to enable bluetooth on windows 11", "turn on bluetooth win11"),
        ("factorial of 6", "what is 6!"),
        ("fix a StackOverflowError in Java", "how to fix a stack overflow error in java"),
        ("gr8 books 4 teens", "Great books for teens"),
        ("is it safe 2 drink tap water", "Is it okay to drink tap water?"),
        ("What is Malcolm X known for?", "what is malcolm x known for"),
        # "to lower" is a verb, not the low side of high / low (a trial's over-veto)
        (
            "How can I lower my blood pressure naturally?",
            "Natural ways to reduce high blood pressure?",
        ),
        # "the current date" is today's (a trial's over-veto)
        ("How do I get the current date in Python?", "How can I get today's date using Python?"),
        # "two times" is "twice" (a trial's over-veto); "2 times 3" is still a product
        ("Why was I charged twice?", "Why did I get billed two times?"),
        # "less" before a small word grades nothing ("less on" is not "off")
        ("How can I save money on groceries?", "How can I spend less on groceries?"),
        # a system and its devices or distributions, a name in either case
        (
            "How can I port my iOS app to Android?",
            "What's the best way to port an iPhone app to Android?",
        ),
        ("How do I uninstall apps on a Mac?", "uninstall apps on macos"),
        ("python reverse list", "How do I reverse a list in Python?"),
        # a place named by its adjective (WordNet's pertainyms; a trial's over-vetoes)
        ("What is the largest country in South America?", "Biggest South American country?"),
        ("What languages are spoken in Europe?", "Which languages do European countries speak?"),
        ("What is the history of France?", "What is French history?"),
        (
            "Do Indians really need the 2000 rupee note?",
            "Is there really need of 2000 notes in India?",
        ),
        # a trial's over-vetoes: "intake" is no "not take" (Latin's in- negates adjectives),
        # "350F" beside a named scale is degrees Fahrenheit, "1 large egg" is "a large egg"
        (
            "How much vitamin C should an adult take daily?",
            "recommended daily vitamin c intake for adults",
        ),
        ("Convert 350 degrees Fahrenheit to Celsius.", "what is 350F in celsius"),
        ("What is 350 °F in Celsius?", "what is 350 f in celsius"),
        ("How many grams of protein are in a large egg?", "how much protein is in 1 large egg"),
        ("What is the in-hand salary of a fresher?", "What is the in hand salary of a fresher?"),
        # ... but an age or a count of days may say when
        ("When should I take creatine?", "creatine when to take"),
        ("When does water boil?", "At what temperature does water boil?"),  # a re-check's
        (
            "how old are babies when the soft spot closes",
            "when does a baby's fontanelle close up?",
        ),
        (
            "how many days does a landlord in california have to return a deposit",
            "when does a california landlord have to give my security deposit back by?",
        ),
        # a kind named by a number glued to a letter, written "3-D" (a user's trial's
        # over-veto: "3D" / "3-D" were read as numbers apart)
        ("how to unclog a 3D printer nozzle", "How do I unclog a 3-D printer nozzle?"),
        ("How do I declare a 2D array in C?", "How do I declare a 2-D array in C?"),
        # a span named by words is its count of a unit, hyphenated or not (a user's trial's
        # over-veto; a re-check's: "half-hour" / "half hour")
        ("Is half an hour of walking a day enough?", "Is 30 minutes of walking a day enough?"),
        ("Is a half-hour nap good?", "Is a half hour nap good?"),
        ("Is a quarter-hour enough to meditate?", "Is 15 minutes enough to meditate?"),
        ("How much does a dozen eggs cost?", "How much do 12 eggs cost?"),
        # "decade" is left as written: asked about alone as often as with "a" (a re-check)
        ("What does decade mean?", "What is a decade?"),
        ("How much does sea level rise per decade?", "How much does sea level rise in a decade?"),
        # a "not" asked why of matches a stop asked why of (a re-check)
        ("Why do I not dream anymore?", "Why did I stop dreaming?"),
        # a time of day glued or dotted is the same time (a trial's over-veto, "number")
        ("waking up at 3 am every night reason", "Why do I wake up at 3am every night?"),
        ("Is it too late to eat at 9 p.m.?", "is it too late to eat at 9pm"),
        ("Does the store open at 8:30am?", "does the store open at 8:30 AM"),
        # a trial's over-vetoes (2026-12-04): the unit "how many" asks for on one side only,
        # a verb and its object made a compound, "3yo"; and what the letter and arrow rules
        # leave alone
        ("how many hours of sleep does a 3 year old need", "sleep needs for a three year old"),
        ("how much sleep does a 3 year old need", "3yo sleep needs"),
        ("how do I breed villagers in minecraft", "minecraft villager breeding"),
        ("Is vitamin D good for you?", "are vitamin d supplements good for you"),
        ("y is the sky blue", "Why is the sky blue?"),
        ("convert a list to a tuple in python", "python list -> tuple"),
        ("What does p->next mean in C?", "what does p->next mean in C"),
        ("Are tomatoes related to potatoes?", "Are potatoes related to tomatoes?"),
        ("WHAT IS THE CAPITAL OF FRANCE", "what is the capital of france"),
        # capitals for emphasis are no acronyms (a re-check's over-vetoes)
        ("what IS the capital of france", "what is the capital of france"),
        ("WHY is the sky blue", "why is the sky blue"),
        ("turn ON bluetooth", "turn on bluetooth"),
        ("what is dna", "What is DNA?"),
        # "on" before a determiner is a preposition, no side of on / off (a blind trial's)
        (
            "How do you turn off location tracking on an Android phone?",
            "On an Android device, where do I disable location services?",
        ),
        (
            "What does airplane mode do on a phone?",
            "When a phone is switched to flight mode, what does it turn off?",
        ),
        ("how do i turn off location on my iphone", "how do i switch off location on iphone"),
        (
            "What is the recovery position?",
            "Can you explain how to put someone in the recovery position?",
        ),
        (
            "Should I turn off the main water valve before going on vacation?",
            "is it a good idea to shut off the main water before going away on vacation",
        ),
        # the same things around "after" in another place: no exchange
        ("what to do after a car accident", "after a car accident what should i do"),
        # "not to V" on one side, "stop V-ing" on the other: one negation each (a trial's
        # over-veto)
        (
            "What's the best way to teach a puppy not to bite?",
            "How do I train my puppy to stop biting?",
        ),
        ("how to stop my dog from biting", "how to teach my dog not to bite"),
        ("rabbit not eating or pooping", "is it an emergency if my rabbit stops eating?"),
        ("why is my rabbit not eating", "my rabbit stopped eating, why?"),
        # "least" grades as "less" does; "1" where the other side says "one"; a unit's power
        # glued on and written as a word; "yes or no" negates nothing (re-checks' and a
        # user's trial's over-vetoes)
        ("least expensive way to fly to Paris", "cheapest way to fly to Paris"),
        ("the least difficult language to learn", "the easiest language to learn"),
        ("how many psi in 1 bar", "how many psi in one bar"),
        ("how many square meters in a hectare", "how many m2 in one hectare"),
        ("how many cm3 in a liter", "how many cubic centimeters in a liter"),
        ("sprained ankle ice yes or no", "Should I ice a sprained ankle?"),
        ("should I ice a sprained ankle or no", "Should I ice a sprained ankle?"),
        # a passive turns the names round by itself; what two sides do to each other alike
        ("Did Germany invade Poland?", "Was Poland invaded by Germany?"),
        (
            "When India faces Australia at the World Cup, who is the favourite?",
            "Who is the favourite when Australia faces India at the World Cup?",
        ),
        # a rate's period on one side only
        ("How many hours should a 2-year-old sleep per day?", "toddler 2 years sleep hours"),
        # "stop … from" is said of preventing and of putting right alike; a remedy word after
        # it is what is kept from happening, "clear" before no object no remedy (a re-check's
        # over-vetoes, 0.94-0.99)
        ("how do i stop my shoes from smelling", "getting rid of stinky sneaker odor"),
        (
            "How do I prevent Dropbox from deleting my files?",
            "How do I stop Dropbox from removing my files?",
        ),
        (
            "How can I prevent my windows from fogging up in winter?",
            "How can I keep my windows clear in winter?",
        ),
        (
            "How do I prevent my dog from begging at the table?",
            "How do I stop my dog begging for treats at the table?",
        ),
        # "until" is "before"; "in" a count of time ahead is "after" it
        ("How many days until Christmas?", "How many days before Christmas?"),
        (
            "How much will my $10,000 investment be worth in 5 years at 8%?",
            "How much will my $10,000 investment be worth after 5 years at 8%?",
        ),
        # "in" against "for" or "to" is no time asked ("contrast_groups" keep it out)
        (
            "What is the service tax rate in real estate?",
            "What is the service tax rate for real estate?",
        ),
        ("what to do in an earthquake", "what to do during an earthquake"),
        # pronouns joined by "and" / "or", a verb two sides do to each other, two clauses
        # the other way round (a re-check's over-vetoes, 0.90-0.97)
        ("Who should pay for dinner, me or him?", "Who should pay for dinner, him or me?"),
        (
            "Is it legal for me to marry her if she is 17?",
            "Is it legal for her to marry me if she is 17?",
        ),
        (
            "Are we compatible if I love hiking and he loves reading?",
            "Are we compatible if he loves reading and I love hiking?",
        ),
        # an adverb of how often moved to the end; a weekday's plural against the day
        ("how often should I water my cactus", "cactus watering how often"),
        ("is the gym open on saturdays", "gym open saturday?"),
        # finding out in other words, or asked as a yes/no question
        ("How can I tell if a mango is ripe?", "How do I pick a ripe mango?"),
        ("How do I know if my phone has malware?", "How do I scan my phone for malware?"),
        ("How do I check if my tires have enough air?", "how to test tire pressure"),
        ("how can I tell if my soil needs nitrogen", "does my soil need nitrogen"),
        (
            "How do I find out if a journal is Scopus indexed?",
            "How do I identify whether a journal is Scopus indexed?",
        ),
        # one person named for another throughout asks the same of someone else
        ("how do I reset my password", "how do you reset your password"),
        ("how can I tell if someone likes me", "how can u tell if someone likes u"),
        ("Do Canadians need a visa to visit Australia?", "do canadians need a visa for australia"),
        # the same phrase asked in a language in other frames and spellings
        ("how do you say thank you in japanese", "whats the japanese word for thank you"),
        ("hey so how do u say thank you in korean", 'How do you say "thank you" in Korean?'),
        ("translate good luck to Italian", "how do I say good luck in Italian"),
        ("How is thank you said in Japanese?", "What does thank you translate to in Japanese?"),
        (
            "Can someone translate this from Arabic to English?",
            "can anyone translate this to English",
        ),
        # one conversion, "into" and "to", a data type's short name and its full name
        ("convert a string to an int in python", "how do I turn a str into an integer in python"),
        ("java parse String into int", "how to convert a string to an integer in Java"),
    ],
)
def test_guards_let_paraphrases_through(a: str, b: str) -> None:
    assert compare(a, b).ok, compare(a, b)


# words the order, task and negation guards read, for sentences that end or begin anywhere
_GUARD_WORDS = (
    "i me my him he her she they someone we you u and or but if whether how to do does can "
    "check tell find out figure way ways is am are has have doesnt don't not my child bride "
    "visa americans mexico from 45 25 a the who me, ? ."
).split()


@settings(max_examples=300, deadline=None)
@given(
    a=st.lists(st.sampled_from(_GUARD_WORDS), max_size=12),
    b=st.lists(st.sampled_from(_GUARD_WORDS), max_size=12),
)
def test_the_guards_read_any_sequence_of_their_words(a: list[str], b: list[str]) -> None:
    """Pronouns joined at a question's end ("… me or him"), a check word last: a guard that
    looks past either end raised, and a raise is a failed request (a run over the labelled
    pairs found one in the pronoun guard before it was committed)."""
    c = compare(" ".join(a), " ".join(b))
    assert isinstance(c.ok, bool)


def test_prevention_is_read_from_prevent_or_from_keeping_from_getting() -> None:
    """ "keep / stop … from getting X" and "avoid getting X" prevent X; "keeps getting X" goes
    on; "stop X from V-ing" alone may be said of a remedy ("stop my shoes from smelling")."""
    from boundgate.reuse.guards.wording import _prevents

    assert _prevents("how to prevent fleas".split())
    assert _prevents("how do i keep my dog from getting fleas".split())
    assert _prevents("how do i avoid getting blisters".split())
    assert not _prevents("my dog keeps getting fleas".split())
    assert not _prevents("how do i stop my shoes from smelling".split())


CONTRADICTIONS = Path(__file__).parent / "data" / "contradictions.tsv"


def _pairs(path: Path) -> list[tuple[str, ...]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("pair", _pairs(CONTRADICTIONS), ids=lambda p: p[0][:40])
def test_hand_written_contradictions_are_vetoed(pair: tuple[str, ...]) -> None:
    """Every development contradiction is vetoed, except those the file marks as known
    misses (a third column), which must still get through: a fix moves them out."""
    a, b, *known_miss = pair
    assert compare(a, b).ok == bool(known_miss), (a, b, compare(a, b))


PARAPHRASES_DEV = Path(__file__).parent / "data" / "paraphrases_dev.tsv"
DIFFERENT_DEV = Path(__file__).parent / "data" / "different_dev.tsv"


@pytest.mark.parametrize("pair", _pairs(PARAPHRASES_DEV), ids=lambda p: p[0][:40])
def test_chatbot_paraphrases_pass_the_guards(pair: tuple[str, ...]) -> None:
    """Every paraphrase of the development set passes the guards (reusing too little is the
    second sin), except the known over-vetoes the file marks, which must still be vetoed: a
    fix moves them out."""
    a, b, *known = pair
    assert compare(a, b).ok != bool(known), (a, b, compare(a, b))


@pytest.mark.parametrize("pair", _pairs(DIFFERENT_DEV), ids=lambda p: p[1][:40])
def test_look_alike_questions_with_other_answers_are_vetoed(pair: tuple[str, ...]) -> None:
    """Pairs that read alike and ask different things are vetoed, except the known misses
    the file marks (left to the pair model and the verifier), which must still get through."""
    _kind, a, b, *known = pair
    assert compare(a, b).ok == bool(known), (a, b, compare(a, b))


# --- policy -----------------------------------------------------------------------------
def _plan(**kw: object) -> object:
    args: dict[str, object] = {
        "temperature": 0.0,
        "max_temperature": 0.3,
        "query": "how do I reset my password",
        "has_tools": False,
        "cache_control": None,
        "options": None,
        "time_sensitive": TimeSensitivity(),
        "time_sensitive_max_age_s": 300.0,
    }
    args.update(kw)
    return plan(**args)  # type: ignore[arg-type]


def test_policy_cache_control_and_options() -> None:
    p = _plan()
    assert p.lookup is Mode.SEMANTIC and p.store and p.max_age_s is None  # type: ignore[attr-defined]
    p = _plan(cache_control="no-cache")
    assert p.lookup is Mode.OFF and p.store  # type: ignore[attr-defined]
    p = _plan(cache_control="no-store")
    assert p.lookup is Mode.OFF and not p.store  # type: ignore[attr-defined]
    p = _plan(cache_control="max-age=60")
    assert p.max_age_s == 60  # type: ignore[attr-defined]
    p = _plan(options={"reuse": "exact", "max_age": 10}, cache_control="max-age=60")
    assert p.lookup is Mode.EXACT and p.max_age_s == 10  # type: ignore[attr-defined]
    p = _plan(options={"reuse": "off"})
    assert p.lookup is Mode.OFF and not p.store  # type: ignore[attr-defined]
    p = _plan(temperature=0.7)
    assert p.lookup is Mode.OFF and not p.store and p.reason == "temperature"  # type: ignore[attr-defined]
    p = _plan(query="What is the weather today in Paris?")
    assert p.max_age_s == 300  # type: ignore[attr-defined]
    for bad in ({"reuse": "always"}, {"max_age": -1}, {"nope": 1}, "x"):
        with pytest.raises(InvalidRequestError):
            _plan(options=bad)
    assert _plan(cache_control="max-age=" + "9" * 5000).max_age_s == 2**31  # type: ignore[attr-defined]
    for bad in ("max-age=soon", "max-age=-1", "max-age=nan", "max-age=1e3", "max-age=5.5"):
        with pytest.raises(InvalidRequestError):
            _plan(cache_control=bad)


@pytest.mark.parametrize(
    ("question", "stale_soon"),
    [
        # a trial's: answers to these were served long after the time-sensitive limit
        ("What time is it in Tokyo", True),
        ("What day of the week is it", True),
        ("What year is it", True),
        ("How many days until Christmas", True),
        ("When is the next full moon", True),
        ("What is the price of bitcoin", True),
        ("How much is 1 USD in EUR", True),
        ("Is the stock market open", True),
        ("Who won last night's game", True),
        ("What's happening this weekend", True),
        ("Is it raining in Seattle", True),
        ("What is the temperature outside in Oslo", True),
        ("How old is someone born in 1990", True),
        ("What are the upcoming holidays", True),
        ("What is the weather today in Paris?", True),
        # a later trial's: stored with no expiry
        ("Is it going to rain this afternoon?", True),
        ("What's the temperature in London?", True),
        ("How much is one bitcoin worth?", True),
        ("How many yen is a dollar?", True),
        ("What time does the sun set?", True),
        ("Is the Eiffel Tower open?", True),
        ("Is Amazon stock up or down?", True),
        ("How much does gold cost per ounce?", True),
        ("What date is it?", True),
        ("Which day is it?", True),
        ("What are the top headlines?", True),
        ("What's Apple's market cap?", True),
        ("Did it snow in Denver?", True),
        ("What is the wea\u200bther like?", True),
        ("ｗｈａｔ ｉｓ ｔｈｅ ｎｅｗｓ", True),
        # what no clock changes
        ("What is the date of the battle of Hastings", False),
        ("How many days are in a leap year", False),
        ("What day of the week was July 4 1776", False),
        ("How does the stock market work", False),
        ("What is the boiling temperature of water", False),
        ("How many years did ww2 last", False),
        ("Is Python open source?", False),
        ("Why is the sunset red?", False),
        ("What temperature should chicken be cooked to?", False),
        ("How many cents are in a dollar?", False),
        ("Is the Strait of Hormuz open to shipping in general terms, historically", False),
        # one's own score (a trial's answers kept for 300 s only); a kind of weather and a
        # cricket Test's score stay live (a re-check)
        ("How can I raise my credit score fast?", False),
        ("What is a good SAT score?", False),
        ("What's the weather in Chicago?", True),
        ("hot weather warning London", True),
        ("What's the score of the Lakers game?", True),
        ("England test score", True),
        ("final score", True),
    ],
)
def test_time_sensitive_questions_are_those_whose_answer_the_clock_changes(
    question: str, stale_soon: bool
) -> None:
    assert TimeSensitivity()(question) is stale_soon


def test_a_max_age_given_twice_counts_at_its_strictest() -> None:
    """A trial's ``max-age=0`` and ``max-age=1000`` in two fields (or one list) was served a
    3 s old answer: the last one won."""
    for header in ("max-age=0, max-age=1000", "max-age=1000, max-age=0"):
        assert _plan(cache_control=header).max_age_s == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("header", ['ext="a,no-store,b"', 'ext="1,max-age=0,2"', 'x="a,max-age=x"'])
def test_a_quoted_extension_value_keeps_its_commas(header: str) -> None:
    """A trial: the directives were split at every comma, quoted ones too (RFC 9110 §5.6.4),
    so an unknown extension's value read as no-store, max-age=0, or a 400; unknown
    directives are ignored (RFC 9111 §5.2.3)."""
    p = _plan(cache_control=header)
    assert (p.lookup, p.store, p.max_age_s) == (Mode.SEMANTIC, True, None)  # type: ignore[attr-defined]
    assert _plan(cache_control=header + ", no-store").store is False  # type: ignore[attr-defined]


# --- verifier ---------------------------------------------------------------------------
def test_threshold_drops_only_when_data_proves_it_and_feedback_raises_it() -> None:
    v = Verifier(
        ReuseSettings(
            error_bound=0.01, initial_threshold=0.95, min_observations=30, verify_rate=0.0
        )
    )
    assert v.threshold == 0.95
    for i in range(400):
        s = 0.80 + (i % 20) * 0.01
        v.note_lookup(s)
        v.add(Observation(s, True, "observe", None))
    low = v.threshold
    assert low < 0.95
    for _ in range(40):
        v.add(Observation(low + 0.001, False, "feedback", 7))
    assert v.threshold > low
    # the entry that was wrong gets its own floor above the failing similarity
    assert v.threshold_for(7) > low + 0.001


def test_an_entry_only_label_raises_its_entrys_floor_and_nothing_else() -> None:
    """A tenant's "wrong" beyond its feedback quota: the entry it judged wrong is not served
    at that score again, but the curve every tenant is served under does not move."""
    settings = ReuseSettings(error_bound=0.01, min_observations=30, verify_rate=0.0)
    v = Verifier(settings, alternative=DensityScorer())
    for i in range(400):
        s = 0.80 + (i % 20) * 0.01
        v.note_lookup(s)
        v.add(Observation(s, True, "observe", None))
    low, before = v.threshold, v.estimate()
    for _ in range(40):
        v.add(Observation(low + 0.001, False, ENTRY_ONLY, 7))
    assert v.threshold == low and v.estimate() == before
    assert ENTRY_ONLY not in v.by_source()
    assert v.threshold_for(7) > low + 0.001 and v.threshold_for(8) == low
    assert v.decide(7, low + 0.001) is not Verdict.SERVE
    v.add(Observation(low + 0.001, True, ENTRY_ONLY, 8))  # never lowers anything
    assert v.threshold_for(8) == low and v.estimate() == before


def test_decisions_around_the_threshold() -> None:
    v = Verifier(
        ReuseSettings(
            initial_threshold=0.9, similarity_floor=0.7, verify_rate=0.0, min_observations=3
        ),
        rng=random.Random(1),
    )
    # no labels above the threshold yet: a would-be hit is verified, not served
    assert v.decide(1, 0.95) is Verdict.VERIFY
    for _ in range(3):
        v.add(Observation(0.97, True, "verify", None), recompute=False)
    assert v.decide(1, 0.95) is Verdict.SERVE
    assert v.decide(1, 0.8) is Verdict.OBSERVE
    assert v.decide(1, 0.5) is Verdict.MISS
    always = Verifier(ReuseSettings(initial_threshold=0.9, verify_rate=1.0, min_observations=1))
    always.add(Observation(0.97, True, "verify", None), recompute=False)
    assert always.decide(1, 0.95) is Verdict.VERIFY


@pytest.mark.parametrize("seed", range(8))
def test_sampled_verification_never_leaves_a_long_run_of_hits_unchecked(seed: int) -> None:
    """At a verify rate of 20 %, a fifth of would-be hits is checked, and never more than
    2 / rate − 1 = 9 in a row go unchecked: with one coin per hit, seed 0 served its first 25
    would-be hits unchecked (0.8^25, about one stream in 260), 25 wrong answers on traffic
    the prior misjudges before the first wrong label (bench/prior_verify_rate.py)."""
    v = Verifier(
        ReuseSettings(initial_threshold=0.9, verify_rate=0.2, min_observations=1),
        rng=random.Random(seed),
    )
    v.add(Observation(0.97, True, "verify", None), recompute=False)
    verdicts = [v.decide(i, 0.95) for i in range(1000)]
    checked = [i for i, x in enumerate(verdicts) if x is Verdict.VERIFY]
    assert set(verdicts) <= {Verdict.VERIFY, Verdict.SERVE}
    assert 199 <= len(checked) <= 201
    gaps = [b - a - 1 for a, b in zip([-1, *checked], checked, strict=False)]
    assert max(gaps) <= 9, max(gaps)
    assert len(set(gaps)) > 3  # not every fifth: which hit is checked is drawn


def test_a_seeded_verifier_checks_the_same_would_be_hits() -> None:
    """``Verifier.seed`` makes sampled verification repeat: two verifiers built unseeded and
    then seeded alike check the same would-be hits, the first one included (seeding the
    generator alone left the point the first check must reach unseeded, so the benchmark's
    seeded runs differed run to run)."""

    def checked(v: Verifier) -> list[int]:
        v.add(Observation(0.97, True, "verify", None), recompute=False)
        return [i for i in range(200) if v.decide(i, 0.95) is Verdict.VERIFY]

    settings = ReuseSettings(initial_threshold=0.9, verify_rate=0.2, min_observations=1)
    runs = []
    for _ in range(2):
        v = Verifier(settings)
        v.seed(7)
        runs.append(checked(v))
    assert runs[0] == runs[1]
    others = set()
    for seed in range(8):
        v = Verifier(settings)
        v.seed(seed)
        others.add(tuple(checked(v)[:3]))
    assert len(others) > 1  # the seed decides which


def test_a_wrong_hit_tightens_verification_until_enough_are_right_in_a_row() -> None:
    """Tightened inspection: after a wrong label of a would-be or served hit, every would-be
    hit is verified (none served on the old estimate) until ``tightened_rights`` in a row are
    right; a wrong one on the way starts the count again. Labels of misses (``observe``) and
    feedback beyond a tenant's quota (``ENTRY_ONLY``) do not tighten it. On the hostile
    streams of bench/prior_verify_rate.py this kept wrong answers at ≤ 0.2 % of lookups where
    sampling at its rate alone served up to 1.1 %."""
    v = Verifier(
        ReuseSettings(
            initial_threshold=0.9, verify_rate=0.0, min_observations=3, tightened_rights=3
        ),
        rng=random.Random(1),
    )
    for _ in range(3):
        v.add(Observation(0.99, True, "verify", None), recompute=False)
    assert v.decide(1, 0.99) is Verdict.SERVE and v.tightened_inspection == 0
    v.add(Observation(0.8, False, "observe", 2), recompute=False)
    v.add(Observation(0.99, False, ENTRY_ONLY, 3), recompute=False)
    assert v.decide(1, 0.99) is Verdict.SERVE and v.tightened_inspection == 0
    v.add(Observation(0.95, False, "verify", 4), recompute=False)
    assert v.tightened_inspection == 3
    assert all(v.decide(1, 0.99) is Verdict.VERIFY for _ in range(20))  # until labels come
    for _ in range(2):
        v.add(Observation(0.99, True, "verify", None), recompute=False)
    v.add(Observation(0.97, False, "feedback", 5), recompute=False)  # starts the count again
    assert v.tightened_inspection == 3
    for _ in range(3):
        assert v.decide(1, 0.99) is Verdict.VERIFY
        v.add(Observation(0.99, True, "verify", None), recompute=False)
    assert v.tightened_inspection == 0 and v.decide(1, 0.99) is Verdict.SERVE
    off = Verifier(
        ReuseSettings(
            initial_threshold=0.9, verify_rate=0.0, min_observations=1, tightened_rights=0
        )
    )
    off.add(Observation(0.99, True, "verify", None), recompute=False)
    off.add(Observation(0.95, False, "verify", 4), recompute=False)
    assert off.decide(1, 0.99) is Verdict.SERVE


def _labels(beta: float, n: int, seed: int) -> list[tuple[Evidence, bool]]:
    """Synthetic labels: a pair has the same meaning when cos − β·density beats a noisy cut."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        cos, density = rng.uniform(0.7, 1.0), rng.uniform(0.5, 0.95)
        out.append((Evidence(cos, density), cos - beta * density + rng.gauss(0, 0.02) > 0.7))
    return out


def test_density_scorer_learns_the_weight_the_labels_show() -> None:
    s = DensityScorer()
    assert not s.fit(_labels(0.4, 40, 1)[:20])  # too few labels of each outcome: stays cosine
    assert s.beta == 0.0 and s.score(Evidence(0.9, 0.8)) == 0.9
    assert s.fit(_labels(0.4, 3000, 1))
    assert 0.3 < s.beta < 0.5
    # where density says nothing about the meaning, the weight stays near zero
    flat = DensityScorer()
    flat.fit(_labels(0.0, 3000, 2))
    assert flat.beta < 0.05
    # labels without a recorded density (from before it was kept) are left out of the fit
    old = DensityScorer()
    assert not old.fit([(Evidence(e.similarity), ok) for e, ok in _labels(0.4, 3000, 1)])
    assert CosineScorer().score(Evidence(0.9, 0.8)) == 0.9


def test_verifier_rescores_its_labels_when_the_scorer_learns() -> None:
    v = Verifier(
        ReuseSettings(initial_threshold=0.95, verify_rate=0.0, min_observations=30),
        scorer=DensityScorer(),
        refit_every=100,
    )
    for e, ok in _labels(0.4, 1000, 3):
        v.note_lookup(e.similarity, e.density)
        v.add(Observation(e.similarity, ok, "observe", None, e.density))
    assert isinstance(v.scorer, DensityScorer) and v.scorer.beta > 0.3
    # the threshold now lives on the density-adjusted scale (scores here are at most 0.8)
    assert v.threshold < 0.8
    # the same cosine is served in a sparse neighbourhood and only labelled in a crowded one
    assert v.decide(1, 0.95, 0.5) is Verdict.SERVE
    assert v.decide(1, 0.95, 0.95) is Verdict.OBSERVE


async def _lookup(e: ReuseEngine, question: str) -> Lookup:
    """Plan and look up a chat question of tenant "t" for model version "v"."""
    p, k = e.plan_for(
        chat(question), tenant="t", model_version="v", endpoint="/e", cache_control=None
    )
    return await e.lookup(p, k)


async def _remember(
    e: ReuseEngine, lookup: Lookup, answer: str, cost_wh: float = 0.1
) -> str | None:
    """Store ``answer`` for the question of ``lookup`` (carbon: half the energy cost)."""
    done = Completion(answer, "stop", Usage(3, 3))
    return await e.remember(
        lookup,
        done,
        tenant="t",
        model="m",
        model_version="v",
        cost_wh=cost_wh,
        cost_gco2=cost_wh / 2,
    )


def test_loading_reads_the_language_identifier_before_the_first_lookup(tmp_path: Path) -> None:
    """py3langid's model took 0.8-1.8 s to read, and the first semantic lookup read it on the
    event loop, holding every request in flight; ``load`` reads it on a worker thread. In a
    fresh interpreter, since the model is cached for the life of a process."""
    script = f"""
import asyncio
from boundgate.clock import FakeClock
from boundgate.reuse import language
from boundgate.reuse.embedder import HashEmbedder
from boundgate.reuse.engine import ReuseEngine
from boundgate.reuse.verifier import Verifier
from boundgate.settings import ReuseSettings
from boundgate.store import SQLiteStore

async def main():
    store = SQLiteStore({str(tmp_path / "l.db")!r})
    store.open()
    e = ReuseEngine(store=store, embedder=HashEmbedder(), verifier=Verifier(ReuseSettings()),
                    settings=ReuseSettings(), rebind_window_s=3600.0, clock=FakeClock())
    before = language._identifier.cache_info().currsize
    await e.load()
    print(before, language._identifier.cache_info().currsize)
    store.close()

asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "1"]


def test_store_and_index_survive_restart(tmp_path: Path) -> None:
    clock = FakeClock(start=1_800_000_000.0)

    async def engine(store: SQLiteStore) -> ReuseEngine:
        e = ReuseEngine(
            store=store,
            embedder=HashEmbedder(),
            # a loose bound so that the one stored label is enough trust
            verifier=Verifier(
                ReuseSettings(
                    error_bound=0.9, initial_threshold=0.5, verify_rate=0.0, min_observations=1
                )
            ),
            settings=ReuseSettings(),
            rebind_window_s=3600.0,
            clock=clock,
        )
        await e.load()
        return e

    async def first() -> str | None:
        store = SQLiteStore(tmp_path / "b.db")
        store.open()
        e = await engine(store)
        lookup = await _lookup(e, "how tall is mount everest")
        assert not lookup.hit
        out = await _remember(e, lookup, "8849 m", cost_wh=0.2)
        await e.observe(None, 0.99, True, "verify", "req_1")  # the verifier's labels persist too
        store.close()
        return out

    async def second() -> None:
        store = SQLiteStore(tmp_path / "b.db")
        store.open()
        e = await engine(store)
        assert len(e) == 1 and e.verifier.estimate().observations == 1
        # same words, other order: semantic only
        lookup = await _lookup(e, "mount everest how tall is")
        assert lookup.status == "hit-semantic" and lookup.entry is not None
        assert lookup.entry.answer == "8849 m" and lookup.entry.cost_wh == 0.2
        store.close()

    stored = asyncio.run(first())
    assert stored is not None and stored.startswith("ans_")
    asyncio.run(second())


async def _process(path: Path, clock: FakeClock) -> ReuseEngine:
    """One gateway process's engine on the store file ``path`` (its own store instance),
    trusting a semantic match from the start and not following the change log."""
    store = SQLiteStore(path)
    store.open()
    e = await _engine_on(store, clock)
    await e.observe(None, 0.99, True, "verify", "req_0")  # one label: enough trust
    return e


async def _engine_on(store: SQLiteStore, clock: FakeClock) -> ReuseEngine:
    """A loaded engine over ``store`` (opened), trusting a semantic match from the start."""
    e = ReuseEngine(
        store=store,
        embedder=HashEmbedder(),
        verifier=trusting_verifier(),
        settings=ReuseSettings(),
        rebind_window_s=3600.0,
        clock=clock,
    )
    await e.load()
    return e


class _EchoFirstStore(SQLiteStore):
    """A store whose change log is read by its engine right after each entry is written and
    before ``put_entry`` returns: the echo of a process's own new entry arriving before the
    process admits it, as a following task can make it arrive."""

    engine: ReuseEngine | None = None

    async def put_entry(self, entry: StoredEntry) -> None:
        await super().put_entry(entry)
        if self.engine is not None:
            await self.engine.catch_up()


def test_the_echo_of_an_entry_being_stored_here_is_not_a_synced_entry(tmp_path: Path) -> None:
    """A trial's single-process server counted ``synced_entry: 1``: the change log's echo of
    its own new entry was applied (a store read, an admission) before ``remember`` admitted
    it."""

    async def run() -> None:
        store = _EchoFirstStore(tmp_path / "e.db")
        store.open()
        e = await _engine_on(store, FakeClock(start=1_800_000_000.0))
        store.engine = e
        stored = await _remember(e, await _lookup(e, "how deep is the mariana trench"), "11 km")
        assert stored is not None and len(e) == 1
        assert e.counters.get("synced_entry", 0) == 0, e.counters
        assert (await _lookup(e, "how deep is the mariana trench")).status == "hit-exact"
        store.close()

    asyncio.run(run())


def test_an_exact_repeat_at_another_process_is_served_before_its_change_log_is_read(
    tmp_path: Path,
) -> None:
    """Worker A stores an answer; worker B, which has not read the change log since (no
    ``follow``, no ``catch_up``), serves the same question exactly from the store."""

    async def run() -> None:
        clock = FakeClock(start=1_800_000_000.0)
        a = await _process(tmp_path / "b.db", clock)
        b = await _process(tmp_path / "b.db", clock)
        try:
            stored = await _remember(a, await _lookup(a, "how deep is the mariana trench"), "11 km")
            hit = await _lookup(b, "how deep is the mariana trench")
            assert hit.status == "hit-exact" and hit.entry is not None
            assert (hit.entry.id, hit.entry.answer) == (stored, "11 km")
            # admitted as the change log would: by meaning too, and once
            assert (await _lookup(b, "the mariana trench how deep is")).status == "hit-semantic"
            await b.catch_up()
            assert len(b) == 1 and b.counters.get("synced_entry", 0) == 0
            # a revoked answer is not read back
            assert stored is not None
            key = b.entry_key(stored)
            assert key is not None
            await a.store.set_entry_document(key, None, revoked=True)
            c = await _process(tmp_path / "b.db", clock)
            assert not (await _lookup(c, "how deep is the mariana trench")).hit
            c.store.close()
        finally:
            a.store.close()
            b.store.close()

    asyncio.run(run())


def test_a_candidate_dropped_by_another_process_falls_to_the_next_survivor(
    tmp_path: Path,
) -> None:
    """B's best candidate was revoked through A after B last read the change log: B drops
    it on sight and serves the next one that passes, rather than answering miss."""

    async def run() -> None:
        clock = FakeClock(start=1_800_000_000.0)
        a = await _process(tmp_path / "b.db", clock)
        try:
            best = await _remember(
                a, await _lookup(a, "how do i bake an apple pie"), "first answer"
            )
            await _remember(a, await _lookup(a, "how do i bake an apple pie at home"), "second")
            b = await _process(tmp_path / "b.db", clock)
            asked = "how do i bake apple pie"
            probe = await _lookup(b, asked)
            assert probe.status == "hit-semantic" and probe.entry is not None
            assert probe.entry.id == best  # the nearer of the two
            key = a.entry_key(best or "")
            assert key is not None
            await a.store.set_entry_document(key, None, revoked=True)
            served = await _lookup(b, asked)
            assert served.status == "hit-semantic" and served.entry is not None
            assert served.entry.answer == "second"
            assert b.meta(key) is None and b.counters["dropped_candidate"] == 1
            b.store.close()
        finally:
            a.store.close()

    asyncio.run(run())


def test_engine_measures_density_and_keeps_it_with_the_label(tmp_path: Path) -> None:
    async def run() -> None:
        store = SQLiteStore(tmp_path / "d.db")
        store.open()

        async def engine() -> ReuseEngine:
            e = ReuseEngine(
                store=store,
                embedder=HashEmbedder(),
                verifier=Verifier(
                    ReuseSettings(initial_threshold=0.99, verify_rate=0.0), scorer=DensityScorer()
                ),
                settings=ReuseSettings(),
                rebind_window_s=3600.0,
                clock=FakeClock(start=1_800_000_000.0),
            )
            await e.load()
            return e

        e = await engine()
        for q in ("red apple pie recipe", "red apple tart recipe", "green apple pie recipe"):
            await _remember(e, await _lookup(e, q), f"answer to {q}")
        lookup = await _lookup(e, "apple pie recipe red")
        assert lookup.similarity is not None and lookup.candidate is not None  # labelled
        assert 0 < lookup.density <= 1
        await e.settle(lookup, "another answer", "req_1")
        rows = await store.observations()
        assert [(r.similarity, r.density) for r in rows] == [(lookup.similarity, lookup.density)]
        # a restart rebuilds the verifier with the density of every label
        assert (await engine()).verifier.estimate().observations == 1
        store.close()

    asyncio.run(run())


def test_eviction_keeps_what_saves_most_energy_per_byte(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "b.db")
    store.open()
    clock = FakeClock(start=1_800_000_000.0)
    e = ReuseEngine(
        store=store,
        embedder=HashEmbedder(),
        verifier=Verifier(ReuseSettings(verify_rate=0.0)),
        settings=ReuseSettings(max_entries=3),
        rebind_window_s=3600.0,
        clock=clock,
    )

    async def run() -> None:
        for i, cost in enumerate([5.0, 0.01, 3.0, 0.02]):
            lookup = await _lookup(e, f"question number {'x' * i}")
            await _remember(e, lookup, "same size answer", cost_wh=cost)
            clock.advance(1)

    asyncio.run(run())
    costs = sorted(m.cost_wh for m in e._meta.values())
    assert costs == [0.02, 3.0, 5.0]  # the cheapest-to-recompute entry went first

    # a bound (pinned) entry is never evicted, however cheap
    cheapest = min(e._meta.values(), key=lambda m: m.cost_wh)
    cheapest.pinned = True

    async def more() -> None:
        await _remember(e, await _lookup(e, "one more question"), "same size answer", cost_wh=4.0)

    asyncio.run(more())
    assert cheapest.key in e._meta and len(e) == 3
    assert len(asyncio.run(store.entries())) == 3
    store.close()


async def _trusting_engine(store: SQLiteStore, embedder: HashEmbedder) -> ReuseEngine:
    """A loaded engine on ``store`` whose verifier serves from its first lookup."""
    verifier = Verifier(
        ReuseSettings(error_bound=0.9, initial_threshold=0.5, verify_rate=0.0, min_observations=1)
    )
    verifier.add(Observation(0.99, True, "verify", None))  # trusted from the start
    e = ReuseEngine(
        store=store,
        embedder=embedder,
        verifier=verifier,
        settings=ReuseSettings(),
        rebind_window_s=3600.0,
        clock=FakeClock(start=1_800_000_000.0),
    )
    await e.load()
    return e


def test_questions_longer_than_the_embedding_window_are_matched_exactly_only(
    tmp_path: Path,
) -> None:
    """A model with a fixed input window embeds only the start of a longer question, so two
    questions that differ after it get the same vector (similarity 1). Such questions must
    never be served by meaning: only an exact repeat may reuse their answer, also after a
    restart. Shorter questions keep semantic reuse."""
    window = 6
    first_words = "summarise this report about the budget"  # 7 words: past the window
    long_a = first_words + " the project is approved"
    long_b = first_words + " the project is cancelled"
    short = "how tall is mount everest"

    async def engine(store: SQLiteStore) -> ReuseEngine:
        return await _trusting_engine(store, HashEmbedder(window=window))

    async def ask(e: ReuseEngine, q: str, answer: str | None = None) -> str:
        lookup = await _lookup(e, q)
        if not lookup.hit and answer is not None:
            await _remember(e, lookup, answer)
        return lookup.status

    async def run() -> None:
        for restart in (False, True):
            store = SQLiteStore(tmp_path / "w.db")
            store.open()
            e = await engine(store)
            if not restart:
                assert await ask(e, long_a, "approved: summary") == "miss"
                assert await ask(e, short, "8849 m") == "miss"
            assert e.embedder.embed([long_a]).tolist() == e.embedder.embed([long_b]).tolist()
            assert await ask(e, long_b) == "miss"  # same vector, other question
            assert await ask(e, long_a) == "hit-exact"
            assert await ask(e, "mount everest how tall is") == "hit-semantic"
            assert e.counters.get("too_long_for_semantic", 0) >= 1
            store.close()

    asyncio.run(run())


REFUSAL = (
    "I'm sorry for any misunderstanding, but as a chatbot designed to assist with the most "
    "basic of tasks, I don't have the ability to assist with any kind of personal matters."
)  # SmolLM2-135M's greedy answer to "grapes dogs safe" (refusals.py)


@pytest.mark.parametrize(
    ("answer", "declines"),
    [
        # SmolLM2-135M's greedy answers to chat_heldout questions (2026-12-08): 9 of 295
        # opened like these
        (REFUSAL, True),
        ("I'm sorry for any inconvenience, but as a SmolLM, I'm unable to assist with it.", True),
        (
            "I'm sorry for any confusion, but as a chatbot designed to assist with food, I "
            "don't have the capability to provide information about food or drink.",
            True,
        ),
        ("I'm sorry, but I can't help with that.", True),
        ("Sorry. I cannot provide that information.", True),  # the apology's next sentence
        ("As an AI language model, I don't have personal opinions.", True),
        ("Could you please clarify what you mean by 'grapes dogs safe'?", True),
        ("I apologize, but I won't be able to answer that question.", True),
        ("I can't really help with medical questions.", True),
        # a new user's: served by meaning before; the opening read past an interjection
        (
            "Toilex: Ahem! I'm sorry for any misunderstanding, but as a text-based AI, I "
            "don't have the capability to unclog a toilet.",
            True,
        ),
        (
            "I'm sorry for any misglamour, but as a weather-related AI, I'm designed to "
            "assist with weather-related tasks. I'm not equipped to provide weather advice.",
            True,
        ),
        ("I'm sorry for your loss. I'm here to support you. I'm a helpful AI.", True),
        ("I'm glad you're interested in bringing liquids. I can help with that.", True),
        ("I'm sorry for any misglamour. I'm here to help you with whatever", True),  # cut
        # answers that answer, apologies and "can't" beside
        ("I'm sorry to hear that. Grapes are toxic to dogs, so call your vet.", False),
        ("No, dogs cannot eat grapes. They are toxic to dogs.", False),
        ("Grapes are toxic. I can't stress enough how important it is to call a vet.", False),
        ("Unfortunately, there is no cure for the common cold. Rest helps.", False),
        ("If you don't have access to a vet, call the poison line.", False),
        ("Paris is the capital of France. If you can't find a hotel, try the Marais.", False),
        ("I'm sorry to hear that. Grapes are toxic to dogs. I'm here to help if needed.", False),
        ("I'm here to help! To caramelize onions, slice them thin.", False),
        ("I think rice works best. I can help with that if you want more tips.", False),
        ("", False),
    ],
)
def test_an_answer_that_declines_to_answer_is_told_by_its_opening(
    answer: str, declines: bool
) -> None:
    assert is_refusal(answer) is declines


def test_a_refusal_is_reused_for_its_own_wording_only(tmp_path: Path) -> None:
    """A new user was served SmolLM2's refusal of "grapes dogs safe" for a question that
    reads like it: an answer that declines to answer speaks of the wording asked, so it is
    stored for its exact request only, also after a restart, and one stored by meaning
    before (a vector written beside it) is found exactly only once loaded. An answer beside
    it keeps semantic reuse (the control)."""
    from boundgate.store import EntryVector

    async def run() -> None:
        store = SQLiteStore(tmp_path / "r.db")
        store.open()
        e = await _trusting_engine(store, HashEmbedder())
        await _remember(e, await _lookup(e, "grapes dogs safe"), REFUSAL)
        await _remember(e, await _lookup(e, "how tall is mount everest"), "8,849 m tall.")
        assert e.counters.get("refusal_exact_only") == 1
        assert (await _lookup(e, "grapes dogs safe")).status == "hit-exact"
        assert (await _lookup(e, "dogs grapes safe")).status == "miss"
        assert (await _lookup(e, "mount everest how tall is")).status == "hit-semantic"
        # an earlier version stored it with a vector: loaded, it is found exactly only
        (entry,) = [x for x in await store.entries() if x.answer == REFUSAL]
        assert not entry.vector
        vector = e.embedder.embed([entry.query])[0].astype("float32").tobytes()
        wrote = await store.set_entry_vectors(
            e.embedder.name, [EntryVector(entry.key, vector, entry.embedder)]
        )
        assert wrote == 1
        store.close()
        store = SQLiteStore(tmp_path / "r.db")
        store.open()
        again = await _trusting_engine(store, HashEmbedder())
        assert (await _lookup(again, "dogs grapes safe")).status == "miss"
        assert (await _lookup(again, "grapes dogs safe")).status == "hit-exact"
        assert (await _lookup(again, "mount everest how tall is")).status == "hit-semantic"
        store.close()

    asyncio.run(run())


def test_a_question_past_the_semantic_length_is_matched_exactly_whatever_the_embedder(
    tmp_path: Path,
) -> None:
    """A re-check: the test-only hash embedder embeds a question of any length, and the guards
    read a 6,700-character one for about 4 s on the event loop (their time grows with the
    square of its length). A question over ``SEMANTIC_MAX_CHARS`` is matched exactly only,
    stored without a vector, whatever the embedder."""
    from boundgate.reuse.searching import SEMANTIC_MAX_CHARS

    body = "please summarise this long report about the budget " * 60
    assert len(body) > SEMANTIC_MAX_CHARS
    store = SQLiteStore(tmp_path / "l.db")
    store.open()

    async def run() -> None:
        e = await _trusting_engine(store, HashEmbedder())  # no window: it embeds any length
        assert not e.by_meaning(body, "a summary")
        assert e.by_meaning("how tall is mount everest", "8,849 m")
        lookup = await _lookup(e, body + "approved")
        await _remember(e, lookup, "a summary")
        assert (await _lookup(e, body + "cancelled")).status == "miss"
        assert (await _lookup(e, body + "approved")).status == "hit-exact"
        assert e.counters.get("too_long_for_semantic", 0) >= 1

    try:
        asyncio.run(run())
    finally:
        store.close()


def test_the_minilm_embedder_knows_when_a_question_overflows_its_window() -> None:
    from boundgate.reuse.embedder import MAX_TOKENS, OnnxEmbedder

    e = OnnxEmbedder()
    start = "Summarise this report. " + " ".join(
        f"Item {i} of the budget was reviewed." for i in range(25)
    )
    a, b = start + " It is approved.", start + " It is cancelled."
    assert e.fits("How tall is Mount Everest?")
    assert e.fits("word " * (MAX_TOKENS - 2)) and not e.fits("word " * (MAX_TOKENS - 1))
    assert not e.fits(a) and not e.fits(b)
    va, vb = e.embed([a, b])
    assert float(va @ vb) > 0.999  # why such questions are never matched by meaning


def test_scopes_hold_values_json_canonicalisation_cannot() -> None:
    """A valid int64 seed beyond 2^53 (and a NaN, which Python's JSON parser accepts) made
    the RFC 8785 scope hash raise: a 500 found by the fuzz run. They are spelled as text."""
    big = dataclasses.replace(chat("hi", seed=2**63 - 1), temperature=0.7)  # sampled: seeded
    other = dataclasses.replace(chat("hi", seed=2**63 - 2), temperature=0.7)
    assert key(big) != key(other)
    k = reuse_key(big, tenant="t", model_version="v1", endpoint="/v1/chat/completions")
    assert k is not None and k.scope_doc["params"]["seed"] == f"int:{2**63 - 1}"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("How do I reset my password?", "  how do I reset my password ", True),
        ("How do I reset my password?", "How do I reset my PASSWORD?", False),  # or an acronym
        ("How many bits are in 1 MB?", "How many bits are in 1 Mb?", False),
        ("How many watts is 1 MW?", "How many watts is 1 mW?", False),
        ("What is CO?", "What is Co?", False),
        ("Is the word ABC in capitals?", "Is the word abc in capitals?", False),
        ("What is 5!!", "What is 5!", False),
        ("Compute n!", "Compute n", False),
        ("Hello!", "hello", True),
        ("Was bedeutet das Wort Maße?", "Was bedeutet das Wort Masse?", False),
        ("Is «ABC» loud?", "Is «abc» loud?", False),
        ('Is "ABC\nDEF" upper case?', 'Is "abc\ndef" upper case?', False),
        ("In Python, after x = True, what is x?", "In Python, after x = true, what is x?", False),
        (
            "What does this print?\n```\nif x:\n    print(1)\nprint(2)\n```",
            "What does this print?\n```\nif x:\n    print(1)\n    print(2)\n```",
            False,
        ),
        ("What is python?", "what   is python.", True),
        # a capital after a sentence's first word may be all that tells a name from a word
        # (capitonyms, from WordNet); other names' case is forgiven
        ("What is the capital of France?", "what is the capital of france", True),
        ("Who is Elon Musk", "who is elon musk", True),
        ("Can I?", "can i?", True),
        ("What’s a VPN?", "What's a VPN?", True),  # a phone's apostrophe is the keyboard's
        ("What is Python?", "what is python?", False),
        ("What does the word Polish mean", "What does the word polish mean", False),
        ("Tell me about the history of Turkey", "tell me about the history of turkey", False),
        ("Where is Nice?", "Where is nice?", False),
        ("How do I reset it? I forgot.", "how do i reset it? i forgot", True),
        # the material of an instruction counts to the letter
        ("Count the capitals in: Hello World", "Count the capitals in: hello world", False),
        ("Translate into French: You are coming?", "Translate into French: You are coming.", False),
        ("How many spaces are in: cat    dog", "How many spaces are in: cat dog", False),
        ("Translate into German:Are you coming?", "Translate into German:Are you coming.", False),
        ("翻译成英文：你来了？", "翻译成英文：你来了。", False),
        ("What time is 10:30 in Paris?", "what time is 10:30 in paris", True),
        # code keeps its spacing and its end; a dot of its own is an argument
        ('What does print("a  b") output?', 'What does print("a b") output?', False),
        ("Explain the regex \\d+?", "Explain the regex \\d+", False),
        ("What does git add .", "What does git add", False),
        # a line longer than LONG_LINE_CHARS is a paste: matched as written
        ("Summarise: " + "word " * 300, "summarise: " + "word " * 300, False),
        ("Translate into French: good night", "translate into French:  good night", True),
        ("Is it 5?", "is it 5", True),
        ("Calculate 5!", "Calculate 5", False),
        ('What does print("Hi") output?', 'What does print("hi") output?', False),
        ("Is 'a    b' spaced?", "Is 'a b' spaced?", False),
        ("What is x² if x is 3?", "What is x2 if x is 3?", False),
        ("Café?", "Cafe\u0301?", True),  # NFC: canonically equivalent spellings
        # a trial's findings: product names that are words, one letter, a unit after a number,
        # German Sie, an abbreviation is no sentence end, a question about its own form, an
        # operator at the end
        ("What is Rust?", "What is rust?", False),
        ("How do I install Windows?", "How do I install windows?", False),
        ("What is Visa?", "What is visa?", False),
        # a later trial: served the water spring's answer for the framework, the bread's for
        # the JavaScript runtime
        ("What is Spring?", "What is spring?", False),
        ("What is Bun?", "What is bun?", False),
        ("How do I install Arch?", "How do I install arch?", False),
        ("Who is Bill Gates?", "who is bill gates", True),
        ("What does σ mean in statistics?", "What does Σ mean in statistics?", False),
        ("A guy asked me a question", "a guy asked me a question", True),
        ("Convert 5 Mm to km", "Convert 5 mm to km", False),
        # a capitalised common word keeps its capital: "Dollars" is forgone with "Bill",
        # which a trial's translation questions told apart from "bill" (its other answer)
        ("It costs 5 Dollars.", "it costs 5 dollars", False),
        ("How do you say Bill in Spanish?", "How do you say bill in Spanish?", False),
        ("How do you say will in French?", "How do you say Will in French?", False),
        ("Is Double a primitive type in Java?", "Is double a primitive type in Java?", False),
        ("Is Boolean a primitive type in Java?", "Is boolean a primitive type in Java?", False),
        ("Is True a keyword in Python?", "Is true a keyword in Python?", False),
        ("Translate Summer into Italian", "Translate summer into Italian", False),
        # a name that is no common word is forgiven, and so is a text in title case
        ("What is the capital of France?", "what is the capital of France", True),
        ("Do they speak Spanish in Peru?", "do they speak spanish in peru", True),
        ("How To Make Pancakes", "how to make pancakes", True),
        ("Roses are red  \nViolets are blue", "Roses are red\nViolets are blue", False),
        ("Wie alt sind Sie?", "Wie alt sind sie?", False),
        ("Which is older, Greece vs. Turkey?", "Which is older, Greece vs. turkey?", False),
        ("It is big. Turkey is bigger", "It is big. turkey is bigger", True),
        ("Is Hello capitalized?", "Is hello capitalized?", False),
        # a function that reads a string's case (a trial was served the other's answer)
        (
            "Does Python's islower return true for Ejqaxh",
            "Does Python's islower return true for ejqaxh",
            False,
        ),
        # a trial's: requests that act on the text after them without a colon, and questions
        # about the message's own kind or end, shared an answer that differs
        ("Reverse the string Hello", "Reverse the string hello", False),
        ("Proofread this sentence i like london", "Proofread this sentence I like London", False),
        ("Repeat exactly the words Good Morning", "Repeat exactly the words good morning", False),
        ("Translate into French You are coming?", "Translate into French You are coming.", False),
        ("Can you reverse the word Stop", "can you reverse the word stop", False),
        ("Is this a question or a statement?", "Is this a question or a statement.", False),
        (
            "Does my message end with a question mark?",
            "Does my message end with a question mark",
            False,
        ),
        ("Is my last sentence a question?", "Is my last sentence a question.", False),
        ("How do I fix a leaking tap?", "how do i fix a leaking tap", True),
        ("How do you say thank you in Japanese?", "how do you say thank you in japanese", True),
        (
            "How many capital letters are in Hello World?",
            "How many capital letters are in hello world?",
            False,
        ),
        ("How many spaces are in the text a   b", "How many spaces are in the text a b", False),
        (
            "Does the second line end with spaces?\nhello   ",
            "Does the second line end with spaces?\nhello",
            False,
        ),
        ("Explain the JavaScript operator ??", "Explain the JavaScript operator ?.", False),
        ("What is this ?", "what is this", True),
        # a line with code keeps its case, not its opening question word's
        ("What is C++?", "what is C++?", True),
        ("What is 50% of 80?", "what is 50% of 80", True),
        ("True == 1?", "true == 1?", False),
        ("How do I use std::vector?", "how do I use std::vector", True),
        ("How do I use std::vector?", "How do I use std:: vector?", False),
        # lines end at "\n" (or "\r\n") only, not at every break str.splitlines() knows (a
        # break-it trial was served the invalid JSON's answer for the valid one)
        (
            'Is this valid JSON?\n{"note": "line one\nline two"}',
            'Is this valid JSON?\n{"note": "line one\u2028line two"}',
            False,
        ),
        (
            "What does this print?\nprint(len('ab\ncd'))",
            "What does this print?\nprint(len('ab\x1ccd'))",
            False,
        ),
        ("Sort these:\r\nb\r\na\r\n", "Sort these:\nb\na", True),
        # ... and any other line break keeps the text as written (a re-check: in one line
        # they were read as spaces)
        ("# T\rif x:\ra()\relse:\r    b()", "# T\rif x:\r    a()\relse:\r    b()", False),
        ("How many lines are in a\rb\rc", "How many lines are in a b c", False),
        ("split a\u2028b by lines in python", "split a b by lines in python", False),
    ],
)
def test_the_exact_form_forgives_only_what_cannot_change_an_answer(
    a: str, b: str, same: bool
) -> None:
    assert (canonical_query(a) == canonical_query(b)) is same


def test_a_text_completions_prompt_is_exact_to_the_character() -> None:
    assert canonical_query("def f(a):\n    return", verbatim=True) != canonical_query(
        "DEF F(A): RETURN", verbatim=True
    )
    assert canonical_query("The capital of France is", verbatim=True) != canonical_query(
        "The capital of France is ", verbatim=True
    )
    # a trial's finding: "é" precomposed and as "e" + accent are different tokens to a model
    assert canonical_query("The word Café is spelled C-A-F-", verbatim=True) != canonical_query(
        "The word Cafe\u0301 is spelled C-A-F-", verbatim=True
    )


@pytest.mark.parametrize(
    ("text", "english"),
    [
        ("How long is the flight from Madrid to Paris?", True),
        ("Why was Quora down on 27th August by 12 pm (IST)?", True),
        ("What is the best hotel in Los Angeles or Las Vegas?", True),
        ("What does MIT stand for?", True),
        # an English question about a word of another language is English (the quoted word
        # is a literal the guards compare exactly)
        ("What is the meaning of 'pourquoi' in French?", True),
        ("Compare Java and Python.", True),
        ("7 + 5 = ?", True),
        ("How do I rebase a git branch onto main?", True),
        ("¿Cuánto dura el vuelo de Madrid a París?", False),
        ("Ist Schokolade nicht giftig für Hunde?", False),
        ("Combien de temps dure le train de Paris à Lyon ?", False),
        ("Quais alimentos não devo comer na gravidez?", False),
        ("Как включить Bluetooth?", False),
        # no function word of a list: a trial's dangerous pairs the word list missed, and
        # short requests in languages it never listed
        ("Vuelos baratos de Barcelona a Londres", False),
        ("Convierte dólares a euros", False),
        ("Traduis cette phrase en anglais", False),
        ("Günstige Flüge von Berlin nach London", False),
        ("Voli economici da Roma a Londra", False),
        ("Goedkope vluchten van Amsterdam naar Londen", False),
        ("Jak ugotować ryż?", False),
        ("Billiga flyg till Paris", False),
        ("Nasıl kilo verilir?", False),
        ("Cara membuat nasi goreng", False),
        ("如何打开蓝牙", False),
        # English search-box queries naming a borrowed dish: too few words for the
        # identifier, but every one an English noun (a trial's misses)
        ("Tiramisu recipe", True),
        ("Paella recipe", True),
        ("Pesto pasta recipe", True),
        ("Recipes for gazpacho", True),
        ("is 97 prime", True),
        # ... and English words joining them (a trial's, English's probability 0.034)
        ("melatonin for jet lag", True),
        ("co to jest pizza", False),  # Polish "to" is no English joining word
        # ... while a foreign function word that WordNet lists as a noun keeps them apart
        ("Capital de Australia", False),
        ("Receta de paella", False),
        ("Recette de la paella", False),
    ],
)
def test_semantic_reuse_is_for_the_language_the_guards_read(text: str, english: bool) -> None:
    assert reads_english(text) is english


def _engine_scoring_every_pair_099(store: SQLiteStore, clock: FakeClock) -> ReuseEngine:
    """An engine over ``store`` (opened; not loaded) whose pair scorer scores every pair
    0.99 and whose verifier has proven that score: what guards and freshness let through is
    served."""
    verifier = trusting_verifier()
    verifier.add(Observation(0.9, True, "verify", None, pair=0.99))
    return ReuseEngine(
        store=store,
        embedder=HashEmbedder(),
        verifier=verifier,
        settings=ReuseSettings(),
        rebind_window_s=3600.0,
        clock=clock,
        pair_scorer=FakePairScorer(lambda asked, kept: 0.99),
    )


@pytest.mark.parametrize(
    "stored", ["What is the current price of bitcoin?", "What is the latest price of bitcoin?"]
)
def test_a_time_sensitive_stored_question_ages_out_for_its_paraphrases_too(
    tmp_path: Path, stored: str
) -> None:
    """A helper's audit: the time-sensitive limit (``reuse.time_sensitive_max_age_s``) was
    applied when the *asked* question reads time-sensitive only, so "What is the current
    price of bitcoin?" still answered "What is the price of bitcoin?" an hour later."""
    store = SQLiteStore(tmp_path / "t.db")
    store.open()
    clock = FakeClock(start=1_800_000_000.0)
    e = _engine_scoring_every_pair_099(store, clock)

    async def run() -> None:
        await e.load()
        first = await engine_lookup(e, stored)
        done = Completion("About 90,000 dollars.", "stop", Usage(3, 3))
        await e.remember(
            first, done, tenant="t", model="m", model_version="v", cost_wh=0.1, cost_gco2=0.05
        )
        asked = "What is the price of bitcoin?"
        assert (await engine_lookup(e, asked)).status == "hit-semantic"
        clock.advance(ReuseSettings().time_sensitive_max_age_s + 1)
        assert (await engine_lookup(e, asked)).status == "miss"

    asyncio.run(run())
    store.close()


def test_min_fresh_asks_a_time_sensitive_answer_to_stay_fresh_that_much_longer(
    tmp_path: Path,
) -> None:
    """``Cache-Control: min-fresh=N`` was ignored: a client asking for an answer fresh for
    another N seconds (RFC 9111 §5.2.1.3) was served a time-sensitive answer about to go
    stale. A time-sensitive answer's freshness lifetime is ``reuse.time_sensitive_max_age_s``
    (300 s); other answers have no end to theirs, so min-fresh leaves them alone."""
    store = SQLiteStore(tmp_path / "t.db")
    store.open()
    clock = FakeClock(start=1_800_000_000.0)

    e = _engine_scoring_every_pair_099(store, clock)

    async def run() -> None:
        await e.load()

        async def ask(question: str, cache_control: str | None) -> str:
            p, k = e.plan_for(
                greedy_chat(question), tenant="t", model_version="v", endpoint="/e",
                cache_control=cache_control,
            )  # fmt: skip
            return (await e.lookup(p, k)).status

        for question in ("What is the current price of bitcoin?", "Who wrote Hamlet?"):
            first = await e.lookup(
                *e.plan_for(
                    greedy_chat(question), tenant="t", model_version="v", endpoint="/e",
                    cache_control=None,
                )
            )  # fmt: skip
            done = Completion("An answer.", "stop", Usage(3, 3))
            await e.remember(
                first, done, tenant="t", model="m", model_version="v", cost_wh=0.1, cost_gco2=0.05
            )
        clock.advance(200)  # 100 s of freshness left
        for asked in ("What is the current price of bitcoin?", "What is the price of bitcoin?"):
            assert await ask(asked, None) != "miss"
            assert await ask(asked, "min-fresh=60") != "miss"
            assert await ask(asked, "min-fresh=120") == "miss"
            assert await ask(asked, "min-fresh=60, min-fresh=120") == "miss"  # the strictest
        assert await ask("Who wrote Hamlet?", "min-fresh=100000") == "hit-exact"
        with pytest.raises(InvalidRequestError):
            await ask("Who wrote Hamlet?", "min-fresh=soon")

    asyncio.run(run())
    store.close()


@pytest.mark.parametrize(
    "messages",
    [
        [
            Message("user", "What's the current price of bitcoin?"),
            Message("assistant", "About $90,000."),
            Message("user", "And ethereum?"),
        ],
        [
            Message("system", "You report today's weather and the latest news."),
            Message("user", "Give me the summary."),
        ],
    ],
    ids=["follow-up", "system-prompt"],
)
def test_a_conversation_made_time_sensitive_by_an_earlier_message_ages_out(
    tmp_path: Path, messages: list[Message]
) -> None:
    """A trial: the time-sensitive limit read the last user message only, so a follow-up in
    a conversation about a price, or any question under a system prompt about today's news,
    was served its stored answer exactly after 5 minutes and for ever."""
    store = SQLiteStore(tmp_path / "t.db")
    store.open()
    clock = FakeClock(start=1_800_000_000.0)
    req = GenerationRequest(model="m", messages=messages, temperature=0.0, max_tokens=50)

    async def run() -> None:
        e = await _engine_on(store, clock)

        async def ask() -> Lookup:
            p, k = e.plan_for(req, tenant="t", model_version="v", endpoint="/e", cache_control=None)
            return await e.lookup(p, k)

        first = await ask()
        done = Completion("About 3,000 dollars.", "stop", Usage(3, 3))
        await e.remember(
            first, done, tenant="t", model="m", model_version="v", cost_wh=0.1, cost_gco2=0.05
        )
        assert (await ask()).status == "hit-exact"
        clock.advance(ReuseSettings().time_sensitive_max_age_s + 1)
        assert (await ask()).status == "miss"

    asyncio.run(run())
    store.close()


def test_an_answer_filed_under_an_older_exact_form_is_no_hit_for_what_it_now_tells_apart(
    tmp_path: Path,
) -> None:
    """A trial was served "How do you say Bill in Spanish?"'s answer (Guillermo) for "… bill
    …" (la cuenta): the exact form forgave the capital. It keeps it now, and an answer an
    older gateway filed under the form both shared is no exact hit for the other one."""
    store = SQLiteStore(tmp_path / "t.db")
    store.open()

    async def run() -> None:
        e = await _engine_on(store, FakeClock())
        asked = greedy_chat("How do you say bill in Spanish?")
        p, key = e.plan_for(asked, tenant="t", model_version="v", endpoint="/e", cache_control=None)
        assert key is not None
        first = await e.lookup(p, key)
        # filed as an older gateway did: "Bill"'s question under the form it shared with "bill"
        older = dataclasses.replace(
            first, key=dataclasses.replace(key, query="How do you say Bill in Spanish?")
        )
        done = Completion("Guillermo.", "stop", Usage(3, 3))
        await e.remember(
            older, done, tenant="t", model="m", model_version="v", cost_wh=0.1, cost_gco2=0.05
        )
        assert (await e.lookup(p, key)).status == "miss"
        bill = greedy_chat("How do you say Bill in Spanish?")
        _, key2 = e.plan_for(bill, tenant="t", model_version="v", endpoint="/e", cache_control=None)
        assert key2 is not None and key2.exact != key.exact  # the capital is kept today

    asyncio.run(run())
    store.close()


def test_answers_stored_in_a_limit_class_scope_are_found_by_that_class(tmp_path: Path) -> None:
    """Answers an older gateway stored in the scope of their ``max_tokens`` class
    (``ReuseKey.legacy``) are found, exactly and by meaning, by requests of that class after
    a restart, and only by them; what is stored now goes into the scope without the class."""
    store = SQLiteStore(tmp_path / "legacy.db")
    store.open()
    verifier = trusting_verifier()
    verifier.add(Observation(0.9, True, "verify", None, pair=0.99))

    def engine() -> ReuseEngine:
        return ReuseEngine(
            store=store,
            embedder=HashEmbedder(),
            verifier=verifier,
            settings=ReuseSettings(),
            rebind_window_s=3600.0,
            clock=FakeClock(start=1_800_000_000.0),
            pair_scorer=FakePairScorer(lambda asked, kept: 0.99),
        )

    async def lookup(e: ReuseEngine, question: str, max_tokens: int) -> Lookup:
        req = dataclasses.replace(greedy_chat(question), max_tokens=max_tokens)
        p, k = e.plan_for(req, tenant="t", model_version="v", endpoint="/e", cache_control=None)
        return await e.lookup(p, k)

    stored = "How tall is Mount Everest?"

    async def run() -> None:
        older = engine()
        await older.load()
        first = await lookup(older, stored, 50)
        assert first.key is not None and first.key.legacy is not None
        first.key = first.key.legacy  # as a gateway made it before the limit left the scope
        done = Completion("8,849 metres.", "stop", Usage(3, 3))
        await older.remember(
            first, done, tenant="t", model="m", model_version="v", cost_wh=0.1, cost_gco2=0.05
        )
        e = engine()  # restarted: the entry is loaded from the store
        await e.load()
        assert (await lookup(e, stored, 60)).status == "hit-exact"  # class 64, like 50
        near = await lookup(e, "mount everest how tall is", 64)
        assert near.status == "hit-semantic" and near.entry is not None
        assert near.key is not None and near.key.legacy is not None
        assert near.entry.scope == near.key.legacy.scope != near.key.scope
        for other in (65, 2000):  # another class: the older scope is not theirs
            assert (await lookup(e, stored, other)).status == "miss"
            assert (await lookup(e, "mount everest how tall is", other)).status == "miss"

    asyncio.run(run())
    store.close()


def test_a_leader_finds_the_answer_an_identical_request_stored_while_it_looked_up(
    tmp_path: Path,
) -> None:
    """An SRE's trial: 10 identical requests at once to a fast upstream ran it 2-5 times.
    A request's lookup read the exact map before the first one's answer was filed, and the
    first one's flight had landed by the time it joined: it led a flight of its own. A new
    leader looks again: the stored answer, ``hit-coalesced``, its own flight landed."""

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "b.db")
        store.open()
        try:
            e = await _engine_on(store, FakeClock(start=1_800_000_000.0))
            e.settings.coalesce_wait_s = 10.0
            late = await _lookup(e, "What is the capital of Australia?")  # before it is stored
            first = await _lookup(e, "What is the capital of Australia?")
            assert e.join_flight(first) is None and first.flight is not None  # it leads
            await _remember(e, first, "Canberra.")
            e.land(first)
            assert late.status == "miss" and e.join_flight(late) is None  # nothing in flight
            hit = await e.stored_meanwhile(late)
            assert hit is not None and hit.status == "hit-coalesced"
            assert hit.entry is not None and hit.entry.answer == "Canberra."
            assert late.flight is None and len(e.flights) == 0
            # a leader with nothing stored meanwhile leads
            other = await _lookup(e, "What is the capital of Austria?")
            assert e.join_flight(other) is None and await e.stored_meanwhile(other) is None
            assert other.flight is not None
        finally:
            store.close()

    asyncio.run(scenario())


def test_a_recorded_request_keeps_what_its_client_left_out() -> None:
    """A rebind or a batch line regenerates from the recorded request: the sampling
    parameters its client left out stay left out (the upstream's default), and a record
    written before they were recorded reads as sending both."""
    req = GenerationRequest(
        "m", messages=[Message("user", "hi")], temperature=0.0, left_out=frozenset({"top_p"})
    )
    again = request_from_json(request_json(req))
    assert again.left_out == {"top_p"} and again.temperature == 0.0
    older = request_json(dataclasses.replace(req, left_out=frozenset()))
    assert "left_out" not in older and request_from_json(older).left_out == frozenset()
