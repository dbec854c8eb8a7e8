"""The README's examples run against a real server."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from helpers import Live

pytestmark = pytest.mark.slow  # the examples run on the real model

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_python_example_streams_with_energy(local_live: Live) -> None:
    (block,) = python_blocks(ROOT / "README.md")
    code = block.replace("http://127.0.0.1:8080/v1", local_live.url)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    text = out.getvalue()
    assert "'energy_method': 'estimate'" in text or "'energy_method': 'rapl'" in text
    assert "'carbon_g'" in text


def test_api_doc_python_examples_run(
    local_live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, reuse, auto, batch, retried = python_blocks(ROOT / "docs" / "api.md")
    namespace: dict[str, object] = {}
    exec(
        compile(first.replace("http://127.0.0.1:8080/v1", local_live.url), "api.md", "exec"),
        namespace,
    )
    reply = namespace["reply"]
    assert reply.choices[0].message.content  # type: ignore[attr-defined]
    # the reuse example (extra_body) runs with the same client
    exec(compile(reuse, "api.md", "exec"), namespace)
    # the auto example: without a [routing] section the default ladder is the default model
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(auto, "api.md", "exec"), namespace)
    assert out.getvalue() == "smollm2-135m;answered smollm2-135m\n"
    # the batch example, with a one-line input file in the working directory
    monkeypatch.chdir(tmp_path)
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
    }
    (tmp_path / "requests.jsonl").write_text(json.dumps(line) + "\n")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(batch, "api.md", "exec"), namespace)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n", out.getvalue()), out.getvalue()
    # the Idempotency-Key example: run again (its key kept), it gets the same batch
    exec(compile(retried, "api.md", "exec"), namespace)
    made = namespace["batch"]
    exec(compile(retried.replace("key = str(uuid.uuid4())", ""), "api.md", "exec"), namespace)
    assert namespace["batch"].id == made.id  # type: ignore[attr-defined]
