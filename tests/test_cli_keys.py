"""``boundgate keys``: what an operator types by mistake gets a one-line refusal (exit 2),
never a traceback, and a secret is never printed back (a trial's findings)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from boundgate.cli import app as cli


def keys(tmp_path: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["keys", *args, "--data-dir", str(tmp_path)])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.output


@pytest.mark.parametrize("option", ["--rpm", "--daily-tokens", "--daily-reasoning-tokens"])
def test_a_limit_no_store_can_keep_is_refused(tmp_path: Path, option: str) -> None:
    """2**63 overflowed SQLite's INTEGER: a traceback ending in OverflowError."""
    code, out = keys(tmp_path, "create", "--tenant", "acme", option, str(2**63))
    assert code == 2 and "Traceback" not in out, out
    assert "9223372036854775807" in out  # the range it says
    code, out = keys(tmp_path, "create", "--tenant", "acme", option, str(2**63 - 1))
    assert code == 0, out


@pytest.mark.parametrize("tenant", ["local", "unauthenticated"])
def test_the_gateways_own_tenant_names_are_refused(tmp_path: Path, tenant: str) -> None:
    """The ledger writes "local" for open mode's requests and "unauthenticated" for refused
    ones: a key's usage under either would be mixed with theirs in every report."""
    code, out = keys(tmp_path, "create", "--tenant", tenant)
    assert code == 2 and "the gateway's own name" in out, out
    assert keys(tmp_path, "create", "--tenant", "local-lab")[0] == 0


def test_revoke_takes_the_whole_key_and_never_prints_it(tmp_path: Path) -> None:
    made = CliRunner().invoke(
        cli, ["keys", "create", "--tenant", "acme", "--data-dir", str(tmp_path)]
    )
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[-1]
    key_id = secret.split("-")[1]
    code, out = keys(tmp_path, "revoke", secret)
    assert code == 0 and f"revoked {key_id}" in " ".join(out.split()), out
    assert secret.split("-", 2)[2] not in out
    code, out = keys(tmp_path, "revoke", key_id)
    assert code == 0 and "already revoked" in out, out
    mistyped = secret[:-1] + "x"  # still reads as the same id: revoked already
    assert keys(tmp_path, "revoke", mistyped)[0] == 0
    unknown = "GtUbQ9k2Zr4c8pLx0sVmNw7yHfD3aEoJ"  # a secret's tail pasted alone
    code, out = keys(tmp_path, "revoke", unknown)
    assert code == 2 and unknown not in out and "no such key: GtUbQ9k2Zr4" in out, out
