"""The usage a reused answer reports, as OpenAI means usage: ``prompt_tokens`` the prompt this
request sent, ``completion_tokens`` the answer's (``gateway.context.hit_usage``). A hit
reported the stored question's prompt tokens: 0 for an answer imported from a bound document
(``boundgate docs import``), another question's count for an answer served to another
wording.

These tests need ``pipeline.py`` to call ``hit_usage`` where it called ``usage_of`` (see the
module's ``hit_usage`` docstring); until then they fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from boundgate.assembly import build_app
from boundgate.backends.base import GenerationRequest, Message
from boundgate.backends.fake import FakeBackend
from boundgate.cli import app as cli
from boundgate.gateway.context import estimated_prompt_tokens
from boundgate.reuse import binding
from boundgate.reuse.scope import reuse_key
from boundgate.settings import load_settings
from helpers import Live, fake_settings, write_config

Q = "What is the boiling point of water at sea level?"
# the same exact key (runs of spaces are one space in its exact form), 9 bytes more
SPACED = "What  is  the  boiling  point  of  water  at  sea  level?"
HASH = '[reuse]\nembedder = "hash"'


@contextmanager
def gateway(tmp: Path) -> Iterator[Live]:
    tmp.mkdir(parents=True, exist_ok=True)
    settings = fake_settings(tmp, HASH)
    settings.reuse.persist_index = False
    app = build_app(settings, backends={"fake": FakeBackend("fake", params_b=1, version="v1")})
    with Live.in_process(app) as live:
        yield live


def ask(live: Live, content: str, **body: Any) -> Any:
    payload = {"messages": [{"role": "user", "content": content}], "temperature": 0, **body}
    return live.http.post("/v1/chat/completions", json=payload)


def streamed_usage(live: Live, content: str) -> tuple[str, dict[str, Any]]:
    r = ask(live, content, stream=True, stream_options={"include_usage": True})
    assert r.status_code == 200, r.text
    chunks = [
        json.loads(line.removeprefix("data: "))
        for line in r.text.splitlines()
        if line.startswith("data: {")
    ]
    (usage,) = [c["usage"] for c in chunks if c.get("usage")]
    return r.headers["x-boundgate-reuse"], usage


def estimate(live: Live, content: str) -> int:
    req = GenerationRequest(model="fake", messages=[Message("user", content)])
    return estimated_prompt_tokens(live.gateway.backends["fake"], req)


def test_a_hit_reports_the_prompt_it_was_asked_not_the_stored_one(tmp_path: Path) -> None:
    """The same prompt word for word reports the count the model made of it (what a fresh
    answer reports); another spelling of the same exact key reports its own prompt's
    estimate, as the ledger row does, streamed or not (it reported the stored question's)."""
    with gateway(tmp_path) as live:
        fresh = ask(live, Q)
        assert fresh.headers["x-boundgate-reuse"] == "miss"
        again = ask(live, Q)
        assert again.headers["x-boundgate-reuse"] == "hit-exact"
        assert again.json()["usage"] == fresh.json()["usage"]
        spaced = ask(live, SPACED)
        assert spaced.headers["x-boundgate-reuse"] == "hit-exact"
        usage = spaced.json()["usage"]
        asked = estimate(live, SPACED)
        assert asked != fresh.json()["usage"]["prompt_tokens"]  # the test means something
        assert usage["prompt_tokens"] == asked, usage
        assert usage["completion_tokens"] == fresh.json()["usage"]["completion_tokens"]
        assert usage["total_tokens"] == asked + usage["completion_tokens"]
        row = live.ledger()[spaced.headers["x-request-id"]]
        assert (row.prompt_tokens, row.completion_tokens) == (asked, usage["completion_tokens"])
        status, streamed = streamed_usage(live, SPACED)
        assert status == "hit-exact" and streamed["prompt_tokens"] == asked, streamed


def test_an_imported_answer_reports_the_asked_prompts_tokens(tmp_path: Path) -> None:
    """An answer imported from a bound document has no prompt count (no model here read its
    question): a hit on it reported ``prompt_tokens`` 0. It reports the asked prompt's
    estimate, and the document's completion tokens."""
    issuer = binding.Signer.load_or_create(tmp_path / "a")
    answer = "It boils at 100 degrees Celsius."
    req = GenerationRequest(
        model="fake", messages=[Message("user", Q)], max_tokens=1024, temperature=0
    )
    key = reuse_key(req, tenant="local", model_version="v1", endpoint="/v1/chat/completions")
    assert key is not None
    now = datetime.now(UTC)
    doc = binding.build(
        question=Q,
        variants=[Q],
        answer=answer,
        model="fake",
        model_version="v1",
        tenant="local",
        scope=key.scope_doc,
        askers=3,
        created=now,
        cost_wh=0.002,
        cost_gco2=0.001,
        completion_tokens=6,
        temperature=0,
    )
    b = tmp_path / "b"
    b.mkdir()
    fake_settings(b, HASH)
    docs = b / "import.ndjson"
    docs.write_text(json.dumps(issuer.sign(doc, now)) + "\n")
    pub = str(tmp_path / "a" / binding.PUBLIC_KEY_FILE)
    res = CliRunner().invoke(
        cli, ["docs", "import", str(docs), "--public-key", pub, "-c", str(b / "boundgate.toml")]
    )
    assert res.exit_code == 0 and "imported 1" in res.output, res.output
    with gateway(b) as live:
        r = ask(live, Q)
        assert r.headers["x-boundgate-reuse"] == "hit-exact", r.headers
        usage = r.json()["usage"]
        assert usage["prompt_tokens"] == estimate(live, Q) > 0, usage  # was 0
        assert usage["completion_tokens"] == 6
        status, streamed = streamed_usage(live, Q)
        assert status == "hit-exact" and streamed["prompt_tokens"] == estimate(live, Q)


ROUTED = """
[server]
data_dir = "{data}"
grid_zone = "DE-LU"

[reuse]
embedder = "hash"
persist_index = false

[routing.ladders]
default = ["small", "large"]

[models.small]
backend = "fake"
default = true
params_b = 0.135

[models.large]
backend = "fake"
params_b = 70
"""


def test_an_auto_requests_reused_rung_reports_the_asked_prompts_tokens(tmp_path: Path) -> None:
    """``model: "auto"``: a rung served a stored answer reports the prompt the request sent
    (``routed.py``; it reported the stored question's)."""
    cfg = write_config(tmp_path / "boundgate.toml", ROUTED.format(data=tmp_path / "data"))
    app = build_app(load_settings(cfg))
    with Live.in_process(app) as live:
        fresh = ask(live, Q, model="auto")
        assert fresh.status_code == 200 and fresh.headers["x-boundgate-reuse"] == "miss"
        spaced = ask(live, SPACED, model="auto")
        assert spaced.headers["x-boundgate-reuse"] == "hit-exact", spaced.headers
        req = GenerationRequest(model="small", messages=[Message("user", SPACED)])
        asked = estimated_prompt_tokens(live.gateway.backends["small"], req)
        assert asked != fresh.json()["usage"]["prompt_tokens"]
        assert spaced.json()["usage"]["prompt_tokens"] == asked, spaced.json()["usage"]
