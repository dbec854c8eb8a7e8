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
    return Usage(entry.prompt_tokens, entry.completion_tokens)


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
    )
