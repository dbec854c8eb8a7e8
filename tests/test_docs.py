"""The README's examples run against a real server."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from conftest import Live

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


def test_api_doc_python_examples_run(local_live: Live) -> None:
    first, reuse = python_blocks(ROOT / "docs" / "api.md")
    namespace: dict[str, object] = {}
    exec(
        compile(first.replace("http://127.0.0.1:8080/v1", local_live.url), "api.md", "exec"),
        namespace,
    )
    reply = namespace["reply"]
    assert reply.choices[0].message.content  # type: ignore[attr-defined]
    # the reuse example (extra_body) runs with the same client
    exec(compile(reuse, "api.md", "exec"), namespace)
