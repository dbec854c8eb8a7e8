"""``docs export --out`` and ``docs import`` at the edges of their files (an audit: an export to
a directory that is not there was a traceback, exit 1, and could leave a truncated file; an
import of an empty export said "imported 0", exit 0, where ``docs verify`` of it exits 1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from boundgate.assembly import build_app
from boundgate.backends.fake import FakeBackend
from boundgate.cli import app as cli
from boundgate.reuse import binding
from helpers import Live, fake_settings

HASH = '[reuse]\nembedder = "hash"'


def one_document(tmp: Path) -> list[str]:
    """A gateway under ``tmp`` with one bound document; the CLI options for it."""
    tmp.mkdir()
    settings = fake_settings(tmp, HASH)
    settings.reuse.bind_after = 1
    app = build_app(settings, backends={"fake": FakeBackend("fake", params_b=1)})
    with Live.in_process(app) as live:
        body = {"messages": [{"role": "user", "content": "Why is the sky blue?"}]}
        r = live.http.post("/v1/chat/completions", json={**body, "temperature": 0})
        assert r.headers["x-boundgate-document"].startswith("doc_")
    return ["--config", str(tmp / "boundgate.toml")]


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    text = " ".join(res.output.split())  # rich wraps at the terminal's width
    assert "Traceback" not in text
    return res.exit_code, text


def test_an_export_that_cannot_be_written_is_one_line_exit_2(tmp_path: Path) -> None:
    cfg = one_document(tmp_path / "gw")
    code, text = run("docs", "export", "--out", str(tmp_path / "nowhere" / "x.json"), *cfg)
    assert code == 2 and text.startswith(f"error: cannot write {tmp_path / 'nowhere'}"), text
    assert "No such file or directory" in text
    target = tmp_path / "a directory"
    target.mkdir()
    code, text = run("docs", "export", "--out", str(target), *cfg)
    assert code == 2 and text.startswith("error: cannot write"), text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a directory", "gw"]  # no leftovers
    assert list(target.iterdir()) == []


def test_an_export_replaces_its_file_whole(tmp_path: Path) -> None:
    """Written through a temporary file renamed over the old one: a reader sees the old
    export or the new one, never part of it; the mode is what a plain write gives."""
    cfg = one_document(tmp_path / "gw")
    out = tmp_path / "docs.json"
    out.write_text("an earlier export\n")
    before = os.umask(0o022)
    try:
        assert run("docs", "export", "--out", str(out), *cfg)[0] == 0
    finally:
        os.umask(before)
    text = out.read_text()
    assert text.startswith("[{") and text.endswith("}]\n")
    assert out.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.json", "gw"]


@pytest.mark.parametrize("content", ["", "[]", "\n\n", "[]\n"])
def test_an_import_without_documents_fails_as_verify_does(tmp_path: Path, content: str) -> None:
    binding.Signer.load_or_create(tmp_path / "exporter")
    pub = str(tmp_path / "exporter" / binding.PUBLIC_KEY_FILE)
    empty = tmp_path / "empty.json"
    empty.write_text(content)
    data = tmp_path / "b"
    code, text = run("docs", "import", str(empty), "--public-key", pub, "--data-dir", str(data))
    assert code == 1 and text == f"error: no documents in {empty}: nothing to import", text
    assert not data.exists()  # nothing created
    code, text = run("docs", "verify", str(empty), "--public-key", pub)
    assert code == 1 and "nothing to verify" in text


FAIL_WRITES_PAST = """
import resource, signal, sys
from boundgate.cli import app
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
app(sys.argv[2:], prog_name="boundgate")
"""


def test_an_export_that_fails_midway_leaves_the_earlier_file(tmp_path: Path) -> None:
    """A write that fails partway (here: past the process's file size limit, as a full disk
    would) left a truncated export where the earlier one was. Now the earlier file stays."""
    import subprocess
    import sys

    tmp = tmp_path / "gw"
    tmp.mkdir()
    settings = fake_settings(tmp, HASH)
    settings.reuse.bind_after = 1
    long = FakeBackend("fake", params_b=1, answers=lambda q: ("w" * 999 + " ") * 240)  # 240 kB
    with Live.in_process(build_app(settings, backends={"fake": long})) as live:
        body = {"messages": [{"role": "user", "content": "Say words."}], "temperature": 0}
        live.http.post("/v1/chat/completions", json=body)
    out = tmp_path / "docs.json"
    out.write_text("an earlier export\n")
    args = ["docs", "export", "--out", str(out), "--config", str(tmp / "boundgate.toml")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run(
        [sys.executable, "-c", FAIL_WRITES_PAST, str(100_000), *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(f"error: cannot write {out}") and "Traceback" not in res.stderr
    assert out.read_text() == "an earlier export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.json", "gw"]


def test_an_export_says_how_many_documents_it_wrote_and_none_is_an_empty_file(
    tmp_path: Path,
) -> None:
    """A new user's trial: an export with no document said nothing, exited 0 and wrote a
    blank line to its NDJSON file. It says how many it exported (stderr), and none is an empty
    file."""
    cfg = one_document(tmp_path / "gw")
    out = tmp_path / "docs.ndjson"
    code, text = run("docs", "export", "--format", "ndjson", "--out", str(out), *cfg)
    assert code == 0 and "exported 1 active document" in text, text
    code, text = run(
        "docs", "export", "--format", "ndjson", "--state", "revoked", "--out", str(out), *cfg
    )
    assert code == 0 and "exported 0 revoked documents" in text, text
    assert out.read_text() == ""
    code, text = run("docs", "export", "--format", "ndjson", "--state", "revoked", *cfg)
    assert code == 0 and "exported 0 revoked documents" in text, text  # (stdout: nothing)
