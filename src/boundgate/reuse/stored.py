"""Stored requests and answers: what a rebind needs to recompute an answer, and how a stored
answer is served again (streamed in token-sized pieces, with its original usage)."""

from __future__ import annotations

import json
import re
from typing import Any

from ..backends.base import GenerationRequest, Message, Usage
from ..store import StoredEntry


def replay_pieces(text: str) -> list[str]:
    """Split a stored answer into token-sized pieces for streaming it back."""
    pieces = re.findall(r"\s*\S+|\s+$", text)
    return pieces or [text]


def usage_of(entry: StoredEntry) -> Usage:
    """The usage a hit reports: its answer's, as generated, its reasoning tokens too (of its
    completion tokens, as OpenAI counts them). Where the answer's completion tokens were
    never counted (``uncounted``) an estimate, 4 bytes a token, as for a prompt no backend
    counted (``gateway.context.estimated_prompt_tokens``), not 0."""
    completion = entry.completion_tokens
    if uncounted(entry):
        completion = max(1, len(entry.answer.encode()) // 4)
    return Usage(entry.prompt_tokens, completion, min(entry.reasoning_tokens, completion))


def asked_as_stored(
    entry: StoredEntry, req: GenerationRequest, *, developer_as_system: bool = False
) -> bool:
    """Whether ``req`` sends the prompt ``entry``'s answer was generated for, word for word:
    the same messages (or text prompt) as its recorded request (``request_json``). Not for
    an answer without a recorded request (an imported document, a variant), nor one served
    to another wording (a paraphrase by meaning, an exact key's other spelling).
    ``developer_as_system``: the model reads a ``developer`` message as ``system``
    (``Backend.developer_as_system``), so the roles are compared so (a re-check: a hit on an
    answer a developer message stored counted the prompt by estimate, 55 tokens for 32)."""
    body: Any = None
    if entry.request:
        try:
            body = json.loads(entry.request)
        except ValueError:
            return False
    if not isinstance(body, dict):
        return False
    if req.messages is not None:
        stored = body.get("messages")
        asked = [m.fields() for m in req.messages]
        if developer_as_system and isinstance(stored, list):
            stored, asked = _read_as_system(stored), _read_as_system(asked)
        return bool(stored == asked)
    return "prompt" in body and body["prompt"] == req.prompt


def _read_as_system(messages: list[Any]) -> list[Any]:
    """Recorded messages (``Message.fields`` lists) with a ``developer`` role read as
    ``system``."""
    return [
        ["system", *m[1:]] if isinstance(m, list) and m and m[0] == "developer" else m
        for m in messages
    ]


def uncounted(entry: StoredEntry) -> bool:
    """Whether a stored answer's completion tokens are unknown: 0 for an answer that is not
    empty, which no generation reports (a document bound before ``bg:completionTokens``
    imports as 0, "not said")."""
    return entry.completion_tokens <= 0 and entry.answer != ""


def fitting_tokens(entry: StoredEntry) -> int:
    """The completion tokens a stored answer is checked against a request's limit with
    (``scope.answer_fits``): its count; where that is unknown (``uncounted``) and the answer
    is whole, its UTF-8 bytes, which no token count exceeds (a token is at least a byte:
    the bound the daily budget holds a request's text to, ``worst_case_tokens``). Read as
    0 it fitted every limit: a 60-word answer served to ``max_tokens`` 5 (an audit). Such an
    answer serves only requests whose limit is above its bytes, or that set none."""
    if uncounted(entry) and entry.finish_reason == "stop":
        return len(entry.answer.encode())
    return entry.completion_tokens


def request_json(req: GenerationRequest, **extra: Any) -> str:
    """What is needed to recompute an answer (rebind): the request minus per-user fields."""
    body: dict[str, Any] = {
        "model": req.model,
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "stop": req.stop,
        "seed": req.seed,
        "passthrough": req.passthrough,
        **({"left_out": sorted(req.left_out)} if req.left_out else {}),
        **extra,
    }
    if req.messages is not None:
        body["messages"] = [m.fields() for m in req.messages]
    else:
        body["prompt"] = req.prompt
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def request_from_json(text: str) -> GenerationRequest:
    body = json.loads(text)
    return GenerationRequest(
        model=body["model"],
        messages=[Message(*m) for m in body["messages"]] if "messages" in body else None,
        prompt=body.get("prompt"),
        max_tokens=body["max_tokens"],
        temperature=body["temperature"],
        top_p=body["top_p"],
        stop=list(body["stop"]),
        seed=body["seed"],
        passthrough=dict(body["passthrough"]),
        left_out=frozenset(body.get("left_out", ())),
    )
