"""Property-based fuzzing of the HTTP API (issue #13.3): every body the schema may accept, and
plenty it rejects, gets an answer or a 4xx in OpenAI's error shape, never a 500. Text fields
draw from the whole of Unicode as JSON can carry it (lone surrogates included, as \\uXXXX
escapes). Bounded: a few hundred examples per endpoint on the fake backend."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boundgate.assembly import build_app
from boundgate.testing import ThreadedServer
from helpers import fake_settings

pytestmark = pytest.mark.slow  # hundreds of generated requests per endpoint

# all code points, surrogates too (json.dumps escapes them; a server must cope)
TEXT = st.one_of(
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40),
    st.text(
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["", " ", "\u200b", "\x00", "\ufeff", "e\u0301", "\U0001f600" * 30]),
)
NUMBER = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    # json.dumps writes these as NaN/Infinity, which Python's json reads back: never a value
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
ANY_SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
CONTENT = st.one_of(
    TEXT,
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
            st.dictionaries(TEXT, ANY_SCALAR, max_size=2),
        ),
        max_size=3,
    ),
    ANY_SCALAR,
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "wizard"]), "content": CONTENT}
)
OPTIONS = {
    "temperature": st.one_of(st.floats(0, 2), NUMBER),
    "top_p": st.one_of(st.floats(0, 1), NUMBER),
    "max_tokens": st.one_of(st.integers(1, 64), st.integers(1, 2**40), NUMBER),
    "max_completion_tokens": st.integers(1, 2**31),
    "seed": st.integers(-(2**63), 2**63),
    "n": st.integers(-1, 3),
    "stop": st.one_of(TEXT, st.lists(TEXT, max_size=5), ANY_SCALAR),
    "stream": st.booleans(),
    "user": TEXT,
    "boundgate": st.one_of(
        st.fixed_dictionaries(
            {"reuse": st.sampled_from(["off", "exact", "on", "bogus"]), "max_age": NUMBER}
        ),
        ANY_SCALAR,
    ),
}


def body_with(required: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=OPTIONS)


VALID = {  # well-formed values, so that many examples reach reuse and generation
    "temperature": st.sampled_from([0, 0.2, 1.0]),
    "max_tokens": st.integers(1, 40),
    "stream": st.booleans(),
    "stop": st.one_of(TEXT, st.lists(TEXT, max_size=2)),
}
USER = st.fixed_dictionaries({"role": st.just("user"), "content": TEXT})
CHAT = st.one_of(
    body_with({"messages": st.lists(MESSAGE, min_size=0, max_size=3)}),
    st.fixed_dictionaries({"messages": st.lists(USER, min_size=1, max_size=2)}, optional=VALID),
)
COMPLETION = st.one_of(
    body_with({"prompt": st.one_of(TEXT, st.lists(TEXT, max_size=2), ANY_SCALAR)}),
    st.fixed_dictionaries({"prompt": TEXT}, optional=VALID),
)
EMBEDDING = st.fixed_dictionaries(
    {"input": st.one_of(TEXT, st.lists(TEXT, max_size=3), ANY_SCALAR)},
    optional={"model": TEXT, "encoding_format": st.sampled_from(["float", "base64", "x"])},
)


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    settings_ = fake_settings(tmp_path_factory.mktemp("fuzz"))
    app = build_app(settings_)
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.base_url, timeout=60) as client:
        yield client


def non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(non_finite(v) for v in value)
    return False


def check(r: httpx.Response, body: dict[str, Any]) -> None:
    OUTCOMES[r.status_code // 100] = OUTCOMES.get(r.status_code // 100, 0) + 1
    assert r.status_code < 500, r.text[:500]
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        assert "internal_error" not in r.text, r.text[-500:]  # no 500 inside a stream either
    if r.status_code >= 400:
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}, err
    if non_finite(body):  # refused, naming the number (unless the JSON is not Unicode text)
        assert r.status_code == 400, r.text[:500]
        if err["code"] != "invalid_json":
            assert err["code"] == "invalid_value" and "must be a finite number" in err["message"]
            assert err["param"] and err["message"].startswith(err["param"] + ": "), err


# derandomized: the same examples on every run, so CI is deterministic (explore further by
# running with another --hypothesis-seed and derandomize off)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(body=CHAT)
def test_chat_never_500(http: httpx.Client, body: dict[str, Any]) -> None:
    check(http.post("/v1/chat/completions", content=json.dumps(body), headers=JSON), body)


@FUZZ
@given(body=COMPLETION)
def test_completions_never_500(http: httpx.Client, body: dict[str, Any]) -> None:
    check(http.post("/v1/completions", content=json.dumps(body), headers=JSON), body)


@FUZZ
@given(body=EMBEDDING)
def test_embeddings_never_500(http: httpx.Client, body: dict[str, Any]) -> None:
    check(http.post("/v1/embeddings", content=json.dumps(body), headers=JSON), body)


JSON = {"content-type": "application/json"}
OUTCOMES: dict[int, int] = {}  # status class → count, for looking at a run
