"""Configuration: file + env + flags, declared once, errors that name the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from boundgate.cli import app as cli
from boundgate.fmt import utc_time
from boundgate.reuse.binding import PRIVATE_KEY_FILE
from boundgate.settings import ConfigError, describe, load_settings
from boundgate.store import SQLiteStore
from helpers import write_config

CLI = [sys.executable, "-m", "boundgate"]


def test_defaults_serve_the_packaged_model() -> None:
    s = load_settings(None)
    assert s.server.host == "127.0.0.1" and s.server.port == 8080
    assert s.default_model == "smollm2-135m"
    assert s.models["smollm2-135m"].backend == "llama_cpp"


def test_issue_example_config_loads(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.toml",
        """
[server]
host = "127.0.0.1"
port = 8080
data_dir = ".boundgate"
grid_zone = "DE-LU"

[models.smollm2-135m]
backend = "llama_cpp"
default = true

[models.my-upstream]
backend = "openai"
base_url = "http://127.0.0.1:9000/v1"
api_key_env = "UPSTREAM_API_KEY"
upstream_model = "gpt-4o-mini"
params_b = 8
""",
    )
    s = load_settings(cfg)
    assert s.models["my-upstream"].params_b == 8
    assert s.default_model == "smollm2-135m"


def test_a_config_file_that_cannot_be_read_as_toml_text_is_one_line(tmp_path: Path) -> None:
    """An operator's trial: a UTF-16 config file, or a directory given as ``--config``, was a
    traceback on every command (a TOML syntax error was a one-line ConfigError already)."""
    utf16 = tmp_path / "utf16.toml"
    utf16.write_bytes("[server]\nport = 1\n".encode("utf-16"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_settings(utf16)
    with pytest.raises(ConfigError, match=r"cannot read config file .*: Is a directory"):
        load_settings(tmp_path)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[server]\nport = 'eighty'\n", "server.port"),
        ("[server]\nprot = 8080\n", "server.prot: unknown key; did you mean 'port'?"),
        ("[limts]\nrpm = 5\n", "limts: unknown key; did you mean 'limits'?"),
        # pydantic's words named an internal class ("… or instance of ServerSettings")
        ("server = 5\n", "server: a table of settings, not 5: [server] and its keys in the"),
        ("[models.x]\nbackend = 'fake'\nn_thread = 2\n", "did you mean 'n_threads'?"),
        ("[models.x]\nbackend = 'openai'\n", "base_url is required"),
        ("[models.x]\nbackend = 'gpu-magic'\n", "models.x.backend"),
        ("[limits]\nqueue_size = -1\n", "limits.queue_size"),
        ("[server\nport=1", "not valid TOML"),
        # a trial: these started serving and then ended in a traceback
        ("[server]\nlog_level = 'loud'\n", "server.log_level"),
        ("[energy]\ncpu_watts_per_core_low = 10\ncpu_watts_per_core_high = 1\n", "energy.cpu"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, needle: str) -> None:
    cfg = write_config(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError, match=None) as info:
        load_settings(cfg)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # a trial's finding: pydantic's lax mode read `true` as 1 and bound port 1
        ("[server]\nport = true\n", "server.port: Input should be a valid integer (got true)"),
        (
            '[limits]\nrpm = "60"\n',
            'limits.rpm: Input should be a valid integer (got "60": write a number without',
        ),
        ("[limits]\nrpm = true\n", "limits.rpm: Input should be a valid integer (got true)"),
        ("[energy]\npue = false\n", "energy.pue: Input should be a valid number (got false)"),
        ('[scheduler]\nprice_weight = "0.5"\n', "scheduler.price_weight: Input should be a"),
        ("[models.x]\nbackend = 'fake'\nparams_b = true\n", "models.x.params_b: Input should"),
        ("[models.x]\nbackend = 'fake'\nn_threads = '2'\n", "models.x.n_threads: Input should"),
        ("[reasoning]\neffort_tokens = {low = true}\n", "reasoning.effort_tokens.low: Input"),
        ("[reuse]\nlookup_windows = [10, '20']\n", "reuse.lookup_windows.1: Input should"),
        ("[routing]\nlogprob_thresholds = {x = '-1'}\n", "routing.logprob_thresholds.x: Inp"),
        ('[reuse]\nenabled = "no"\n', 'reuse.enabled: Input should be a valid boolean (got "no"'),
        ("[reuse]\nenabled = 0\n", "reuse.enabled: Input should be a valid boolean (got 0)"),
        ('[reuse]\nenabled = "false"\n', '(got "false": write true or false without quotes)'),
        # a trial: `pue = inf` put "Infinity" (no JSON) in every response's energy fields
        ("[energy]\npue = inf\n", "energy.pue: Input should be a finite number"),
        ("[reuse]\ncoalesce_wait_s = nan\n", "reuse.coalesce_wait_s: Input should be a finite"),
        # comma-separated text is the environment's spelling of a list, not the file's
        ('[server]\nallowed_hosts = "vm,gw.lan"\n', "server.allowed_hosts: Input should be a "),
        ('[routing.ladders]\ndefault = "x"\n', "routing.ladders.default: Input should be a va"),
        # rich read "[/x]" in the message as a closing tag: a traceback (exit 1)
        ('server = "[/x]"\n', 'server: a table of settings, not "[/x]"'),
    ],
)
def test_a_config_file_value_of_another_type_is_refused(
    tmp_path: Path, text: str, says: str
) -> None:
    """TOML has numbers and booleans of its own: a boolean or a quoted number where a number
    is expected (or a string or number for a boolean) is a mistake, refused naming the
    setting, not read as pydantic's lax mode reads it (``true`` as port 1)."""
    cfg = write_config(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert says in str(info.value), str(info.value)
    res = CliRunner().invoke(cli, ["settings", "--config", str(cfg)], env=NO_STORE_URL)
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()).startswith(f"error: invalid configuration ({cfg}):")


def test_numbers_and_booleans_are_read_from_text_only_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Environment variables are text: every kind of setting is still read from it (a
    section's key, a model's, a table's value, a list's items, a section as JSON), and a
    TOML integer is still a float setting's value."""
    cfg = write_config(
        tmp_path / "c.toml",
        "[energy]\npue = 2\n[limits]\nreservation_lease_s = 5\n[models.smollm2-135m]\n"
        "backend = 'llama_cpp'\ndefault = true\nparams_b = 1\n[models.tiny]\nbackend = 'fake'\n",
    )
    s = load_settings(cfg)
    assert (s.energy.pue, s.limits.reservation_lease_s, s.models["smollm2-135m"].params_b) == (
        2.0,
        5.0,
        1.0,
    )
    env = {
        "BOUNDGATE_SERVER__PORT": "8081",
        "BOUNDGATE_SERVER__ALLOW_OPEN_REMOTE": "true",
        "BOUNDGATE_LIMITS__RESERVATION_LEASE_S": "7.5",
        "BOUNDGATE_REUSE__ENABLED": "0",
        "BOUNDGATE_MODELS__SMOLLM2_135M__N_THREADS": "3",
        "BOUNDGATE_MODELS__SMOLLM2_135M__PARAMS_B": "0.135",
        "BOUNDGATE_REASONING__EFFORT_TOKENS__LOW": "10",
        "BOUNDGATE_ROUTING__LOGPROB_THRESHOLDS__TINY": "-1.5",
        "BOUNDGATE_ROUTING__POLICY__MATH__FIRST_RUNG": "0",
        "BOUNDGATE_REUSE__LOOKUP_WINDOWS": "10,20",
        "BOUNDGATE_GRID": '{"refresh_s": 60}',
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings(cfg)
    m = s.models["smollm2-135m"]
    assert (s.server.port, s.server.allow_open_remote, s.reuse.enabled) == (8081, True, False)
    assert (s.limits.reservation_lease_s, s.energy.pue, m.n_threads, m.params_b) == (
        7.5,
        2.0,
        3,
        0.135,
    )
    assert s.reasoning.effort_tokens["low"] == 10
    assert s.routing.logprob_thresholds == {"tiny": -1.5}
    assert s.routing.policy["math"].first_rung == 0 and s.reuse.lookup_windows == [10, 20]
    assert s.grid.refresh_s == 60.0
    monkeypatch.setenv("BOUNDGATE_SERVER__PORT", "true")  # a word is no port here either
    with pytest.raises(
        ConfigError, match=r"server\.port: Input should be a valid integer \(got \"true\"\)"
    ):
        load_settings(cfg)


def test_a_bad_environment_value_is_blamed_on_its_variable_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial's ``BOUNDGATE_SERVER__PORT=abc`` with ``-c gw.toml`` was reported as
    "invalid configuration (gw.toml)": the operator searched a file that was right."""
    cfg = write_config(tmp_path / "gw.toml", "[server]\nport = 8099\n")
    monkeypatch.setenv("BOUNDGATE_SERVER__PORT", "abc")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    said = str(info.value)
    assert said.startswith("invalid configuration (environment):"), said
    assert "set by the environment variable BOUNDGATE_SERVER__PORT" in said
    monkeypatch.setenv("BOUNDGATE_LIMITS__RPMM", "5")
    write_config(cfg, "[server]\nport = 8099\n[limits]\nrpm = 1.5\n")
    monkeypatch.delenv("BOUNDGATE_SERVER__PORT")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    said = str(info.value)
    assert said.startswith(f"invalid configuration ({cfg} and the environment):"), said
    assert "limits.rpmm: unknown key; did you mean 'rpm'?; set by the environment" in said
    assert "limits.rpm: Input should be a valid integer" in said and said.count("set by") == 1


def test_a_table_made_by_the_environment_alone_and_a_check_across_sections_name_the_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's trial: ``BOUNDGATE_MODELS__BIG_ONEE__TIMEOUT_S=5`` (a misspelled model)
    and ``BOUNDGATE_ROUTING__LADDERS__DEFAULT=…,nosuch`` were both "invalid configuration
    (gw.toml)", the variables never named."""
    cfg = write_config(
        tmp_path / "gw.toml",
        '[models.fake]\nbackend = "fake"\ndefault = true\n'
        '[models.big_one]\nbackend = "fake"\n[routing.ladders]\ndefault = ["fake", "big_one"]\n',
    )
    assert load_settings(cfg).routing.ladders["default"] == ["fake", "big_one"]
    monkeypatch.setenv("BOUNDGATE_MODELS__BIG_ONEE__TIMEOUT_S", "5")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    said = " ".join(str(info.value).split())
    assert said.startswith("invalid configuration (environment):"), said
    assert (
        "models.big_onee is only in the environment (BOUNDGATE_MODELS__BIG_ONEE__TIMEOUT_S); "
        "did you mean 'big_one'?" in said
    ), said
    monkeypatch.delenv("BOUNDGATE_MODELS__BIG_ONEE__TIMEOUT_S")
    monkeypatch.setenv("BOUNDGATE_ROUTING__LADDERS__DEFAULT", "fake,nosuch")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    said = " ".join(str(info.value).split())
    assert said.startswith("invalid configuration (environment):"), said
    assert "'nosuch' is not a configured model" in said
    assert "set by the environment variable BOUNDGATE_ROUTING__LADDERS__DEFAULT" in said


@pytest.mark.parametrize("rungs", ['["mid", "mid"]', '["small", "mid", "medium"]'])
def test_a_ladder_naming_one_model_twice_is_refused(tmp_path: Path, rungs: str) -> None:
    """A trial's ``["mid", "mid"]`` (and ``["mid", "medium"]``, an alias of mid) started
    without a word and ran mid twice on one escalation."""
    cfg = write_config(
        tmp_path / "gw.toml",
        '[models.small]\nbackend = "fake"\ndefault = true\n'
        '[models.mid]\nbackend = "fake"\naliases = ["medium"]\n'
        f"[routing.ladders]\ndefault = {rungs}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    said = " ".join(str(info.value).split())
    assert "is model 'mid' again" in said and "routing.ladders.default[" in said, said


def test_an_environment_value_refused_is_named_alone_and_told_nothing_of_quotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list's one bad item is the one named (a trial saw every item blamed), and text from
    the environment is not told to lose quotes it does not have; inf is refused there too."""
    monkeypatch.setenv("BOUNDGATE_REUSE__LOOKUP_WINDOWS", "100,abc")
    with pytest.raises(ConfigError) as info:
        load_settings()
    said = str(info.value)
    assert 'reuse.lookup_windows.1: Input should be a valid integer (got "abc")' in said
    assert "lookup_windows.0" not in said, said
    monkeypatch.delenv("BOUNDGATE_REUSE__LOOKUP_WINDOWS")
    monkeypatch.setenv("BOUNDGATE_MODELS__SMOLLM2_135M__N_THREADS", "1.5")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert '(got "1.5")' in str(info.value) and "quotes" not in str(info.value), str(info.value)
    monkeypatch.delenv("BOUNDGATE_MODELS__SMOLLM2_135M__N_THREADS")
    monkeypatch.setenv("BOUNDGATE_ENERGY__PUE", "inf")
    with pytest.raises(ConfigError, match=r"energy\.pue: Input should be a finite number"):
        load_settings()


def test_a_store_url_from_the_environment_is_blamed_on_its_variable_and_empty_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial's ``BOUNDGATE_STORE__URL=mysql://…`` with ``-c gw.toml`` was "invalid
    configuration (gw.toml): store: …", the variable never named; an empty one (unset, as
    an empty variable is for the shell's users) was refused the same way."""
    cfg = write_config(tmp_path / "gw.toml", "[server]\nport = 8099\n")
    monkeypatch.setenv("BOUNDGATE_STORE__URL", "mysql://root@127.0.0.1/x")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    said = str(info.value)
    assert said.startswith("invalid configuration (environment):"), said
    assert "store.url: " in said and "set by the environment variable BOUNDGATE_STORE__URL" in said
    monkeypatch.setenv("BOUNDGATE_STORE__URL", "")
    assert load_settings(cfg).store.url is None


def test_an_integer_setting_takes_from_the_environment_what_a_file_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial's ``BOUNDGATE_LIMITS__RPM=5.0`` was read as 5 where ``rpm = 5.0`` in a file is
    refused; TOML's integer spellings (``1_000``) are read alike from both."""
    cfg = write_config(tmp_path / "gw.toml", "[limits]\nrpm = 5.0\n")
    with pytest.raises(ConfigError, match=r"limits\.rpm: Input should be a valid integer"):
        load_settings(cfg)
    monkeypatch.setenv("BOUNDGATE_LIMITS__RPM", "5.0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert 'limits.rpm: Input should be a valid integer (got "5.0")' in str(info.value)
    monkeypatch.setenv("BOUNDGATE_LIMITS__RPM", "1_000")
    assert load_settings().limits.rpm == 1000
    write_config(cfg, "[limits]\nrpm = 1_000\n")
    monkeypatch.delenv("BOUNDGATE_LIMITS__RPM")
    assert load_settings(cfg).limits.rpm == 1000
    monkeypatch.setenv("BOUNDGATE_ENERGY__PUE", "2")  # a float setting still takes "2"
    assert load_settings().energy.pue == 2.0


FAKE = 'backend = "fake"\n'


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # the ids GET /v1/models lists beside the models: a model named so was ambiguous
        (f"[models.auto]\n{FAKE}", "models.auto: 'auto' is routing.auto_model"),
        (f'[models."auto:fast"]\n{FAKE}', "models.auto:fast: 'auto:fast' starts with 'auto:'"),
        (f"[models.fake]\n{FAKE}aliases = ['auto:default']\n", "models.fake.aliases: 'auto:"),
        (f'[models."all-MiniLM-L6-v2"]\n{FAKE}', "'all-MiniLM-L6-v2' is the embeddings model"),
        (f"[models.fake]\n{FAKE}aliases = ['all-MiniLM-L6-v2']\n", "models.fake.aliases: "),
        (f"[routing]\nauto_model = 'router'\n[models.fake]\n{FAKE}aliases = ['router:x']\n",
         "models.fake.aliases: 'router:x' starts with 'router:'"),
        # an alias that repeats a model's name or another alias: one of them was unreachable
        (f"[models.a]\n{FAKE}aliases = ['b']\n[models.b]\n{FAKE}",
         "models.a.aliases: 'b' is a name of models.b"),
        (f"[models.b]\n{FAKE}[models.a]\n{FAKE}aliases = ['b']\n",
         "models.a.aliases: 'b' is a name of models.b"),
        (f"[models.a]\n{FAKE}aliases = ['x']\n[models.b]\n{FAKE}aliases = ['x']\n",
         "models.b.aliases: 'x' is a name of models.a"),
        (f"[models.a]\n{FAKE}aliases = ['a']\n", "models.a.aliases: 'a' is its own name"),
        (f"[routing]\nauto_model = 'all-MiniLM-L6-v2'\n[models.fake]\n{FAKE}",
         "routing.auto_model: 'all-MiniLM-L6-v2' is the embeddings model's id"),
    ],
)  # fmt: skip
def test_a_model_named_as_a_reserved_model_id_is_refused(
    tmp_path: Path, text: str, says: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(tmp_path / "c.toml", text))
    assert says in str(info.value) and "ambiguous" in str(info.value), str(info.value)


def test_names_reserved_only_where_the_gateway_uses_them_are_accepted(tmp_path: Path) -> None:
    """The embeddings model's id is the gateway's only with reuse on, and ``auto`` only while
    it is ``routing.auto_model``."""
    s = load_settings(
        write_config(
            tmp_path / "c.toml",
            f'[reuse]\nenabled = false\n[models."all-MiniLM-L6-v2"]\n{FAKE}',
        )
    )
    assert list(s.models) == ["all-MiniLM-L6-v2"]
    s = load_settings(
        write_config(
            tmp_path / "d.toml",
            f"[routing]\nauto_model = 'router'\n[models.auto]\n{FAKE}[models.auto-2]\n{FAKE}",
        )
    )
    assert list(s.models) == ["auto", "auto-2"]


def serve_refused(config: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``boundgate serve`` with ``config`` on any free port, as a process: what it printed
    and its exit code (the tests expect it to refuse the configuration and exit)."""
    return subprocess.run(
        [*CLI, "serve", "--config", str(config), "--port", "0", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow  # a CLI process
def test_serve_refuses_a_model_named_as_a_reserved_id_in_one_message(tmp_path: Path) -> None:
    bad = write_config(tmp_path / "bad.toml", f'[models."auto:fast"]\n{FAKE}default = true\n')
    r = serve_refused(bad, tmp_path / "d")
    assert r.returncode == 2, r.stderr
    assert "models.auto:fast: 'auto:fast' starts with 'auto:'" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "d").exists()


@pytest.mark.slow  # a CLI process
def test_serve_refuses_a_meter_it_cannot_read_in_one_message(tmp_path: Path) -> None:
    """``energy.method`` forcing RAPL where no counters are readable: one line and exit 2, as
    for any other setting (a trial got a traceback)."""
    bad = write_config(
        tmp_path / "bad.toml",
        f'[energy]\nmethod = "rapl"\nrapl_root = "{tmp_path / "none"}"\n[models.fake]\n{FAKE}',
    )
    r = serve_refused(bad, tmp_path / "d")
    assert r.returncode == 2, r.stderr
    assert "energy.method = 'rapl' but no readable RAPL counters" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_log_level_is_read_in_any_case(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", "[server]\nlog_level = 'WARNING'\n")
    assert load_settings(cfg).server.log_level == "warning"


@pytest.mark.slow  # a CLI process
@pytest.mark.parametrize("content", [None, b"# not a model\n"])
def test_serve_refuses_a_model_path_that_is_not_a_gguf_file(
    tmp_path: Path, content: bytes | None
) -> None:
    """A configured llama.cpp model that is missing or not GGUF was found only as the models
    loaded: the server had printed that it was serving, then about 60 lines of traceback and
    exit 3 (a new user's trial). It is one line and exit 2, before serving."""
    model = tmp_path / "model.gguf"
    if content is not None:
        model.write_bytes(content)
    bad = write_config(
        tmp_path / "bad.toml",
        f'[models.local]\nbackend = "llama_cpp"\npath = "{model}"\ndefault = true\n',
    )
    r = serve_refused(bad, tmp_path / "d")
    assert r.returncode == 2, r.stderr
    why = "cannot read" if content is None else "is not a GGUF model file"
    assert "models.local.path: " in r.stderr and why in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "serving http" not in r.stderr


def test_env_overrides_file_and_flags_override_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(tmp_path / "c.toml", "[server]\nport = 9001\ngrid_zone = 'ES'\n")
    monkeypatch.setenv("BOUNDGATE_SERVER__PORT", "9002")
    s = load_settings(cfg)
    assert s.server.port == 9002 and s.server.grid_zone == "ES"
    s = load_settings(cfg, {"server": {"port": 9003}})
    assert s.server.port == 9003
    with pytest.raises(ConfigError, match=r"command-line flag --port \(server.port\)"):
        load_settings(cfg, {"server": {"port": 99999}})  # the flag is named, not the file
    sources = {v.key: v.source for v in describe(load_settings(cfg), cfg)}
    assert sources["server.port"] == "env:BOUNDGATE_SERVER__PORT"
    assert sources["server.grid_zone"] == f"file:{cfg}"
    assert sources["server.host"] == "default"
    # a table set entry by entry from the environment was shown as "default"
    monkeypatch.setenv("BOUNDGATE_REASONING__EFFORT_TOKENS__LOW", "10")
    sources = {v.key: v.source for v in describe(load_settings(cfg), cfg)}
    assert sources["reasoning.effort_tokens"] == "env:BOUNDGATE_REASONING__EFFORT_TOKENS__LOW"


def test_a_model_named_with_a_hyphen_is_reachable_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # env names cannot hold "-": SMOLLM2_135M is the packaged default model, smollm2-135m
    monkeypatch.setenv("BOUNDGATE_MODELS__SMOLLM2_135M__N_THREADS", "1")
    s = load_settings(None)
    assert list(s.models) == ["smollm2-135m"]
    m = s.models["smollm2-135m"]
    assert (m.backend, m.default, m.n_threads) == ("llama_cpp", True, 1)
    # ... and merged with the file's settings of that model, the environment winning
    cfg = write_config(
        tmp_path / "c.toml",
        "[models.up-stream]\nbackend = 'openai'\nbase_url = 'http://127.0.0.1:9/v1'\n"
        "default = true\n[models.smollm2-135m]\nbackend = 'llama_cpp'\nn_threads = 2\n"
        "n_ctx = 1024\n",
    )
    monkeypatch.setenv("BOUNDGATE_MODELS__UP_STREAM__UPSTREAM_MODEL", "gpt-x")
    s = load_settings(cfg)
    assert sorted(s.models) == ["smollm2-135m", "up-stream"]
    local, up = s.models["smollm2-135m"], s.models["up-stream"]
    assert (local.n_threads, local.n_ctx, local.default) == (1, 1024, False)
    assert (up.upstream_model, up.default) == ("gpt-x", True)


def test_renamed_settings_keep_their_old_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """reuse.time_sensitive_max_age became time_sensitive_max_age_s: old config files and
    environment variables keep working, and `settings` names where the value came from."""
    cfg = write_config(tmp_path / "c.toml", "[reuse]\ntime_sensitive_max_age = 42\n")
    s = load_settings(cfg)
    assert s.reuse.time_sensitive_max_age_s == 42
    sources = {v.key: v.source for v in describe(s, cfg)}
    assert sources["reuse.time_sensitive_max_age_s"] == f"file:{cfg}"
    monkeypatch.setenv("BOUNDGATE_REUSE__TIME_SENSITIVE_MAX_AGE", "7")
    s = load_settings(None)
    assert s.reuse.time_sensitive_max_age_s == 7
    sources = {v.key: v.source for v in describe(s)}
    assert (
        sources["reuse.time_sensitive_max_age_s"] == "env:BOUNDGATE_REUSE__TIME_SENSITIVE_MAX_AGE"
    )
    monkeypatch.setenv("BOUNDGATE_REUSE__TIME_SENSITIVE_MAX_AGE_S", "8")  # the new name wins
    assert load_settings(None).reuse.time_sensitive_max_age_s == 8
    assert load_settings(cfg).reuse.time_sensitive_max_age_s == 8  # an old file, a new env


@pytest.mark.parametrize(
    ("value", "hosts"),
    [
        ("vm", ["vm"]),
        ("*", ["*"]),
        ("vm,gw.lan", ["vm", "gw.lan"]),
        (" vm , gw.lan ,", ["vm", "gw.lan"]),
        ('["vm", "gw.lan"]', ["vm", "gw.lan"]),
        ("", []),
    ],
)
def test_a_list_setting_in_the_environment_takes_commas_or_json(
    monkeypatch: pytest.MonkeyPatch, value: str, hosts: list[str]
) -> None:
    """A trial's finding: BOUNDGATE_SERVER__ALLOWED_HOSTS=vm (or '*', 'vm,gw.lan') stopped
    `serve` and `settings` with a 162-line traceback, as pydantic-settings decodes a list's
    variable as JSON; only '["vm"]' worked, and no doc said so."""
    monkeypatch.setenv("BOUNDGATE_SERVER__ALLOWED_HOSTS", value)
    assert load_settings(None).server.allowed_hosts == hosts


def test_every_list_setting_takes_commas_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOUNDGATE_ROUTING__ESCALATE_ON", "empty")
    monkeypatch.setenv("BOUNDGATE_REUSE__LOOKUP_WINDOWS", "10, 20")
    monkeypatch.setenv("BOUNDGATE_MODELS__SMOLLM2_135M__ALIASES", "small,tiny")
    monkeypatch.setenv("BOUNDGATE_ROUTING__LADDERS__SMALL", "smollm2-135m")
    s = load_settings(None)
    assert s.routing.escalate_on == ["empty"] and s.reuse.lookup_windows == [10, 20]
    assert s.models["smollm2-135m"].aliases == ["small", "tiny"]
    assert s.routing.ladders == {"small": ["smollm2-135m"]}
    monkeypatch.setenv("BOUNDGATE_ROUTING__ESCALATE_ON", "empty,bogus")
    with pytest.raises(ConfigError, match=r"routing\.escalate_on\.1: Input should be 'empty'"):
        load_settings(None)
    monkeypatch.setenv("BOUNDGATE_ROUTING__ESCALATE_ON", '["empty"')  # JSON, cut short
    with pytest.raises(ConfigError, match=r"routing\.escalate_on: .*not a JSON list"):
        load_settings(None)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        # a trial's finding: ignored, while a misspelled key of a known section is refused
        ("BOUNDGATE_LIMTS__RPM", "no section 'limts'; did you mean BOUNDGATE_LIMITS__RPM?"),
        ("boundgate_Sever__port", "no section 'sever'; did you mean boundgate_SERVER__port?"),
        (
            "BOUNDGATE_MODEL__X__BACKEND",
            "no section 'model'; did you mean BOUNDGATE_MODELS__X__BACKEND?",
        ),
        ("BOUNDGATE_QUUX__A", "no section 'quux' (sections: server, limits, store,"),
    ],
)
def test_a_misspelled_section_in_the_environment_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, says: str
) -> None:
    monkeypatch.setenv(name, "5")
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert f"invalid configuration (environment): {name}: {says}" in str(info.value)
    assert "\n" not in str(info.value)
    res = CliRunner().invoke(cli, ["settings"], env={**NO_STORE_URL, name: "5"})
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()).startswith(
        f"error: invalid configuration (environment): {name}:"
    )


def test_the_projects_other_variables_are_not_settings_and_not_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The variables the project reads besides settings (the config file, the CLI's API
    key, a worker's settings, tests' and benchmarks' switches) are left alone."""
    for name in (
        "BOUNDGATE_API_KEY",
        "BOUNDGATE_WORKER_PARENT",
        "BOUNDGATE_TEST_POSTGRES",
        "BOUNDGATE_BENCH_STORE_URL",
        "BOUNDGATE_KEY",
        "BOUNDGATE_PROMPT",
    ):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("BOUNDGATE_LIMITS__RPM", "5")
    assert load_settings(None).limits.rpm == 5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BOUNDGATE_ROUTING__LADDERS", "small"),
        ("BOUNDGATE_REASONING__EFFORT_TOKENS", "low=10"),
        ("BOUNDGATE_ROUTING__LADDERS", '{"small": '),
        ("BOUNDGATE_SERVER", "port=9000"),
    ],
)
def test_a_table_in_the_environment_that_is_not_json_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """A table (a section, routing.ladders…) given as one variable is JSON; anything else
    was pydantic-settings' traceback naming only the section ("routing"), exit 1."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert f"{name}: not JSON" in str(info.value) and f"{name}__<KEY>" in str(info.value)
    res = CliRunner().invoke(cli, ["settings"])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())  # rich wraps long lines at the terminal's width
    assert text.startswith(f"error: invalid configuration (environment): {name}: not JSON")
    assert "Traceback" not in text


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    for v in describe(load_settings(None)):
        key = v.key.split(".")[-1]
        assert f"`{key}`" in doc, f"{v.key} is missing from docs/configuration.md"


@pytest.mark.slow  # CLI processes
def test_cli_settings_and_bad_config_exit_code(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", "[server]\nport = 9100\n")
    r = subprocess.run(
        [*CLI, "settings", "--config", str(cfg), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    items = {i["key"]: i for i in json.loads(r.stdout)}
    assert items["server.port"]["value"] == 9100
    # the table shows a value as written: a regex's "[a-z]" vanished as markup (a trial's
    # finding, in `docs list`)
    regex = write_config(
        tmp_path / "r.toml", '[reuse]\ntime_sensitive_pattern = "\\\\b(now|[a-z]+day)\\\\b"\n'
    )
    r = subprocess.run(
        [*CLI, "settings", "--config", str(regex)], capture_output=True, text=True, check=True
    )
    assert "(now|[a-z]+day)" in r.stdout, r.stdout
    bad = write_config(tmp_path / "bad.toml", "[server]\nport = 'x'\n")
    r = subprocess.run([*CLI, "serve", "--config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "server.port" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow  # a CLI process
def test_open_mode_refuses_public_host(tmp_path: Path) -> None:
    r = subprocess.run(
        [*CLI, "serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "open mode" in r.stderr


# the CLI's store is the data dir's SQLite one, whatever the environment running the tests sets
NO_STORE_URL = {"BOUNDGATE_STORE__URL": None, "BOUNDGATE_CONFIG": None}


def test_open_mode_refused_before_anything_is_made(tmp_path: Path) -> None:
    """A trial's ``serve --host 0.0.0.0`` without keys made the data dir, its store and its
    signing key, then refused open mode. A data dir without a store has no keys: refused at
    once, nothing made; in one with a store but no keys, no signing key is made."""
    data = tmp_path / "data"
    serve = ["serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(data)]
    r = CliRunner().invoke(cli, serve, env=NO_STORE_URL)
    assert r.exit_code == 2 and "open mode" in r.output, r.output
    assert not data.exists()
    store = SQLiteStore(data / "boundgate.db")  # a store (a trial's), without keys
    store.open()
    store.close()
    r = CliRunner().invoke(cli, serve, env=NO_STORE_URL)
    assert r.exit_code == 2 and "open mode" in r.output, r.output
    assert not (data / PRIVATE_KEY_FILE).exists()


def test_configuration_reference_is_generated_from_settings() -> None:
    import importlib.util

    root = Path(__file__).parent.parent
    spec = importlib.util.spec_from_file_location("gen", root / "scripts" / "gen_config_docs.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    doc = (root / "docs" / "configuration.md").read_text()
    assert gen.render(doc) == doc, "run scripts/gen_config_docs.py"


@pytest.mark.parametrize("url", ["not a url", "api.openai.com/v1", "ftp://host/v1", "http:///v1"])
def test_an_upstream_base_url_that_is_no_http_url_is_refused_at_start(
    tmp_path: Path, url: str
) -> None:
    """A trial's ``base_url = "not a url"`` started, /readyz said ready, and every request
    was a 502 after three retries."""
    text = f'[models.up]\nbackend = "openai"\nbase_url = "{url}"\n'
    with pytest.raises(ConfigError, match="is not an http:// or https:// URL with a host"):
        load_settings(write_config(tmp_path / "c.toml", text))
    ok = '[models.up]\nbackend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
    assert load_settings(write_config(tmp_path / "d.toml", ok)).models["up"].base_url


@pytest.mark.parametrize(
    "variable", ["BOUNDGATE_CREATIVITY__WINDOW_S", "BOUNDGATE_SCHEDULER__REBIND_WINDOW_S"]
)
def test_a_deferrable_jobs_window_is_at_most_a_batchs_longest(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """A trial's window of 1e300 s was taken: its job ran at once (no forecast spans it), and
    its stored deadline failed the dashboard's grid page and ``schedule list`` for good. A
    window is at most 168 h, a batch's longest completion window; a time past any calendar
    reads as such."""
    monkeypatch.setenv(variable, "1e300")
    with pytest.raises(ConfigError, match=r"less than or equal to 604800"):
        load_settings()
    monkeypatch.setenv(variable, "604800")
    load_settings()
    assert utc_time(1e300) == "after 9999-12-31" and utc_time(0) == "1970-01-01 00:00"


def test_every_bad_key_is_named_together_a_list_given_as_text_and_an_unknown_zone_too(
    tmp_path: Path,
) -> None:
    """A docs trial: a list given as text (``allowed_hosts = "a,b"``) was named alone, hiding
    the file's other errors, and an unknown ``server.grid_zone`` was refused only after the
    config check, in another form, once ``serve`` had made the store and the signing key;
    ``boundgate settings`` showed it without complaint. configuration.md: a bad file stops
    ``serve`` at start naming each offending key."""
    cfg = write_config(
        tmp_path / "bad.toml",
        '[server]\nallowed_hosts = "a,b"\ngrid_zone = "FR"\n[limits]\nrpm = "60"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    lines = str(info.value).splitlines()
    assert lines[0] == f"invalid configuration ({cfg}):"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "server.allowed_hosts",
        "server.grid_zone",
        "limits.rpm",
    ]
    assert "no carbon data for 'FR'; known zones: " in lines[2] and "DE-LU" in lines[2]
    res = CliRunner().invoke(cli, ["settings", "--config", str(cfg)], env=NO_STORE_URL)
    assert res.exit_code == 2 and "server.grid_zone" in res.output, res.output
    data = tmp_path / "data"
    zone_only = write_config(
        tmp_path / "zone.toml", f'[server]\ngrid_zone = "FR"\ndata_dir = "{data}"\n'
    )
    res = CliRunner().invoke(
        cli, ["serve", "--config", str(zone_only), "--port", "0"], env=NO_STORE_URL
    )
    assert res.exit_code == 2 and "server.grid_zone" in res.output, res.output
    assert not data.exists()  # nothing made


def test_a_grid_zone_is_read_in_any_case(tmp_path: Path) -> None:
    """A re-check: "gb" was refused ("no carbon data for 'gb'") with no hint that "GB" is
    known. Zone keys are read in any case, spelled as the bundled data spells them; a zone
    no case makes known is refused as before."""
    cfg = write_config(tmp_path / "zone.toml", '[server]\ngrid_zone = " gb "\n')
    assert load_settings(cfg).server.grid_zone == "GB"
    res = CliRunner().invoke(cli, ["grid", "now", "--zone", "de-lu"], env=NO_STORE_URL)
    assert res.exit_code == 0 and res.output.startswith("DE-LU "), res.output
    with pytest.raises(ConfigError, match="no carbon data for 'fr'"):
        load_settings(write_config(tmp_path / "fr.toml", '[server]\ngrid_zone = "fr"\n'))
