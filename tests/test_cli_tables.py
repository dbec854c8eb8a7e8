"""CLI tables piped or captured (not a terminal) print every value whole: no cell is cut to
fit 80 columns, so ``grep``, ``cut`` and scripts see what the store holds."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from boundgate.assembly import build_app
from boundgate.cli import app as cli
from boundgate.settings import describe, load_settings
from helpers import Live, write_config

TENANT = "research-group-with-a-long-and-descriptive-name-for-billing.eu"
BASE_URL = "http://inference-gateway.internal.example.org:9000/some/deep/prefix/v1"


def lines_with(output: str, value: str) -> list[str]:
    return [line for line in output.splitlines() if value in line]


def test_keys_list_shows_long_tenants_whole(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    made = runner.invoke(cli, ["keys", "create", "--tenant", TENANT, *data])
    assert made.exit_code == 0, made.output
    listed = runner.invoke(cli, ["keys", "list", *data])
    assert listed.exit_code == 0, listed.output
    assert len(lines_with(listed.output, TENANT)) == 1
    assert "…" not in listed.output
    assert "daily reasoning tokens" in listed.output  # the header is not folded either


def test_revoking_an_unknown_key_exits_2_like_other_missing_things(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    assert runner.invoke(cli, ["keys", "create", "--tenant", "acme", *data]).exit_code == 0
    res = runner.invoke(cli, ["keys", "revoke", "key_missing", *data])
    assert res.exit_code == 2, res.output
    assert "no such key: key_missing" in res.output


def test_models_shows_long_upstream_urls_whole(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.toml",
        f"""
[server]
data_dir = "{tmp_path / "data"}"

[reuse]
enabled = false

[models.fake]
backend = "fake"
default = true

[models.remote-model-with-a-long-name]
backend = "openai"
base_url = "{BASE_URL}"
""",
    )
    listed = CliRunner().invoke(cli, ["models", "-c", str(cfg)])
    assert listed.exit_code == 0, listed.output
    (row,) = lines_with(listed.output, BASE_URL)
    assert "remote-model-with-a-long-name" in row
    assert "estimate (EcoLogits, output tokens only)" in row
    # a local model's estimate says it is not this host's, and how to measure it
    text = " ".join(listed.output.split())
    assert "not this host" in text and "boundgate models profile" in text
    assert "…" not in listed.output
    assert "all-MiniLM-L6-v2" not in listed.output  # reuse off: no embeddings served
    # the fake backend is no SmolLM2 (a trial was told it was)
    assert "fake backend" in text and "SmolLM2" not in text, listed.output


def test_models_lists_the_embeddings_model_as_the_api_does(tmp_path: Path) -> None:
    """``GET /v1/models`` lists the model ``/v1/embeddings`` serves when reuse is on; the
    CLI listing left it out."""
    cfg = write_config(
        tmp_path / "c.toml",
        f"""
[server]
data_dir = "{tmp_path / "data"}"

[models.fake]
backend = "fake"
default = true
""",
    )
    listed = CliRunner().invoke(cli, ["models", "-c", str(cfg)])
    assert listed.exit_code == 0, listed.output
    (row,) = lines_with(listed.output, "all-MiniLM-L6-v2")
    assert "onnx" in row and "/v1/embeddings" in row and "0.0227" in row
    assert "metered per request" in row


def test_models_lists_what_the_api_lists_in_its_order(tmp_path: Path) -> None:
    """``GET /v1/models`` lists ``auto`` and ``auto:<ladder>``; the CLI listing left them
    out. Both list the same ids now, in the same order."""
    cfg = write_config(
        tmp_path / "c.toml",
        f"""
[server]
data_dir = "{tmp_path / "data"}"

[reuse]
embedder = "hash"

[models.fake]
backend = "fake"
default = true

[models.big]
backend = "fake"
aliases = ["large"]

[routing.ladders]
short = ["fake", "large"]
""",
    )
    listed = CliRunner().invoke(cli, ["models", "-c", str(cfg)])
    assert listed.exit_code == 0, listed.output
    # the first cell of each row ("│ id │ backend │ ..."; the header's bars are "┃")
    ids = [line.split("│")[1].strip() for line in listed.output.splitlines() if line[:1] == "│"]
    with Live.in_process(build_app(load_settings(cfg))) as live:
        served = live.http.get("/v1/models").json()["data"]
    assert ids == [m["id"] for m in served]
    assert ids == ["fake", "big", "auto", "auto:default", "auto:short", "all-MiniLM-L6-v2"]
    (row,) = lines_with(listed.output, "auto:short")
    assert "router" in row and "fake → big" in row  # the ladder, its alias resolved


def test_models_shows_the_local_models_size_as_the_api_does(
    tmp_path: Path, local_live: Live
) -> None:
    """The CLI left "params (B)" blank for the local model while ``GET /v1/models`` gives
    its ``params_b`` (llama.cpp's count once loaded): the CLI reads it from the gguf's header."""
    served = local_live.http.get("/v1/models").json()["data"]
    params_b = next(m for m in served if m["id"] == "smollm2-135m")["boundgate"]["params_b"]
    cfg = write_config(
        tmp_path / "c.toml",
        f"""
[server]
data_dir = "{tmp_path / "data"}"

[models.smollm2-135m]
backend = "llama_cpp"
default = true
""",
    )
    listed = CliRunner().invoke(cli, ["models", "-c", str(cfg)])
    assert listed.exit_code == 0, listed.output
    # its own row (the auto names' rows show it in their ladders)
    (row,) = lines_with(listed.output, "│ smollm2-135m ")
    assert f" {params_b:g} " in row, row


def test_settings_show_each_meaning_whole() -> None:
    items = list(describe(load_settings(None), None))
    longest = max(items, key=lambda i: len(i.description))
    assert len(longest.description) > 80
    shown = CliRunner().invoke(cli, ["settings"])
    assert shown.exit_code == 0, shown.output
    (row,) = lines_with(shown.output, longest.description)
    assert longest.key in row


def test_settings_takes_data_dir_as_the_other_commands_do(tmp_path: Path) -> None:
    """A trial's finding: ``serve``, ``docs`` and ``keys`` take --data-dir, ``settings`` did
    not, so it could not show what they would use. It shows server.data_dir from the flag,
    its source the command line, over the file's."""
    cfg = write_config(tmp_path / "c.toml", f'[server]\ndata_dir = "{tmp_path / "file"}"\n')
    wanted = tmp_path / "flag"
    shown = CliRunner().invoke(
        cli, ["settings", "-c", str(cfg), "--data-dir", str(wanted), "--format", "json"]
    )
    assert shown.exit_code == 0, shown.output
    items = {i["key"]: i for i in json.loads(shown.stdout)}
    assert items["server.data_dir"]["value"] == str(wanted)
    assert items["server.data_dir"]["source"] == "cli"
    assert items["server.port"]["source"] == "default"
    assert not wanted.exists()  # shown, not created
    plain = CliRunner().invoke(cli, ["settings", "-c", str(cfg), "--format", "json"])
    items = {i["key"]: i for i in json.loads(plain.stdout)}
    assert items["server.data_dir"]["source"] == f"file:{cfg}"
    table = CliRunner().invoke(cli, ["settings", "--data-dir", str(wanted)])
    (row,) = lines_with(table.output, "│ server.data_dir ")
    assert str(wanted) in row and " cli " in row
    yaml = CliRunner().invoke(cli, ["settings", "--format", "yaml"])  # printed a table, exit 0
    assert yaml.exit_code == 2 and "use table or json" in yaml.output, yaml.output


def test_models_with_a_mistyped_data_dir_lists_them_and_makes_no_store(tmp_path: Path) -> None:
    """``boundgate models --data-dir`` with a mistyped directory created an empty store
    there. It lists the configured models without measured profiles (there are none to
    read), says where it looked, and makes nothing."""
    mistyped = tmp_path / "nonexistent" / "x"
    env = {"BOUNDGATE_STORE__URL": None, "BOUNDGATE_CONFIG": None}
    listed = CliRunner().invoke(cli, ["models", "--data-dir", str(mistyped)], env=env)
    assert listed.exit_code == 0, listed.output
    assert not (tmp_path / "nonexistent").exists()
    assert "smollm2" in listed.output.lower()  # the default config's model
    text = " ".join(listed.stderr.split())
    assert f"no boundgate store at {mistyped / 'boundgate.db'}" in text
    assert "no measured energy profiles" in text


def test_emoji_codes_in_values_are_printed_as_written(tmp_path: Path) -> None:
    """A trial: ``docs verify`` printed "did:key:z6Mk…" as "did🔑z6Mk…" (rich read ":key:" as
    an emoji code). A document signed by another key is named as its proof names it."""
    from datetime import UTC, datetime

    from boundgate.reuse import binding

    other = binding.Signer.load_or_create(tmp_path / "other")
    binding.Signer.load_or_create(tmp_path / "data")
    when = datetime(2026, 11, 26, tzinfo=UTC)
    doc = binding.build(
        question="q?", variants=["q?"], answer="a", model="fake", model_version="v1",
        tenant="local", scope={"endpoint": "/v1/chat/completions", "params": {}}, askers=3,
        created=when, cost_wh=0.0, cost_gco2=0.0,
    )  # fmt: skip
    f = tmp_path / "doc.ndjson"
    f.write_text(json.dumps(other.sign(doc, when)) + "\n")
    res = CliRunner().invoke(cli, ["docs", "verify", str(f), "--data-dir", str(tmp_path / "data")])
    assert res.exit_code == 1, res.output
    assert binding.did_key(other.public) in res.output and "🔑" not in res.output


def test_a_replicas_data_dir_without_a_sqlite_store_points_at_store_url(tmp_path: Path) -> None:
    """A trial's `keys list --data-dir r1` on a PostgreSQL replica's data directory (its
    signing key there, no SQLite file) was told nothing had been served with it; it is told
    to give the config that sets store.url. An empty directory keeps the first message."""
    from boundgate.reuse import binding

    replica = tmp_path / "r1"
    binding.Signer.load_or_create(replica)
    env = {"BOUNDGATE_STORE__URL": None, "BOUNDGATE_CONFIG": None}
    res = CliRunner().invoke(cli, ["keys", "list", "--data-dir", str(replica)], env=env)
    text = " ".join(res.output.split())
    assert res.exit_code != 0 and "store.url" in text and "--config" in text, text
    assert not (replica / "boundgate.db").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(cli, ["keys", "list", "--data-dir", str(empty)], env=env)
    assert "nothing has been served" in " ".join(res.output.split())
