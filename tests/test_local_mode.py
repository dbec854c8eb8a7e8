"""Open local mode (no API keys) against web pages: what a page in the local user's browser
could send (a cross-site post, a DNS-rebinding read) is refused; programs and, once keys
exist, clients with keys under any name are served as before (server/local.py)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from boundgate.assembly import build_app
from boundgate.server.local import LocalHosts, is_loopback, same_origin, split_host
from boundgate.settings import ConfigError
from boundgate.testing import ThreadedServer
from helpers import Live, arun, assert_error, fake_settings

MSG = [{"role": "user", "content": "hello there"}]
BODY = json.dumps({"messages": MSG, "max_tokens": 2}).encode()
JSON = {"content-type": "application/json"}
ATTACKER = "attacker.example:8080"


def test_a_dns_rebinding_page_reads_nothing(fake_live: Live) -> None:
    """An audit: with no Host check, a page whose name was re-pointed at 127.0.0.1 could read
    the ledger (admin in open mode) and the dashboard. Its Host is its own name: refused."""
    http = fake_live.http
    assert http.post("/v1/chat/completions", json={"messages": MSG}).status_code == 200
    for method, path in [
        ("GET", "/v1/boundgate/ledger"),
        ("GET", "/v1/models"),
        ("GET", "/dashboard"),
        ("GET", "/healthz"),
        ("POST", "/v1/chat/completions"),
    ]:
        r = http.request(method, path, content=BODY, headers={**JSON, "host": ATTACKER})
        err = assert_error(r, 400, code="untrusted_host")
        assert "attacker.example" in err["message"] and "allowed_hosts" in err["message"]
    for host in ["127.0.0.1:8080", "localhost", "LOCALHOST.:1", "[::1]:8080", "app.localhost"]:
        assert http.get("/v1/boundgate/ledger", headers={"host": host}).status_code == 200, host


def test_a_cross_site_post_is_refused(fake_live: Live) -> None:
    """An audit: any page could post to the open gateway without a preflight (a body without
    Content-Type was read as JSON), and so spend its model, store answers or, as the local
    admin, revoke documents. A foreign Origin is refused on every API route; so is a JSON
    body without Content-Type: application/json; a program's request (no Origin, the SDK's
    Content-Type) and the gateway's own pages (its origin) are served."""
    http = fake_live.http
    for origin in ["http://attacker.example", "http://127.0.0.1:3000", "null"]:
        for path, content, headers in [
            ("/v1/chat/completions", BODY, {}),  # a simple request
            ("/v1/chat/completions", BODY, {"content-type": "text/plain"}),
            ("/v1/chat/completions", BODY, JSON),
            ("/v1/batches/batch_x/cancel", b"", {}),  # no body at all
            ("/v1/boundgate/documents/doc_x/revoke", b"", {}),
        ]:
            r = http.post(path, content=content, headers={**headers, "origin": origin})
            err = assert_error(r, 403, code="cross_origin")
            assert origin in err["message"]
        upload = http.post(
            "/v1/files",
            files={"file": ("in.jsonl", b"{}\n")},
            data={"purpose": "batch"},
            headers={"origin": origin},
        )
        assert_error(upload, 403, code="cross_origin")
    r = http.post("/v1/chat/completions", content=BODY, headers={"content-type": ""})
    err = assert_error(r, 400, code="invalid_value")
    assert "Content-Type: application/json" in err["message"]
    own = {"origin": fake_live.base}  # e.g. /docs, served by the gateway itself
    assert http.post("/v1/chat/completions", content=BODY, headers={**JSON, **own}).is_success
    client = fake_live.openai()  # the SDK: application/json, multipart for files
    assert client.chat.completions.create(model="fake", messages=MSG).choices  # type: ignore[arg-type]
    assert client.files.create(file=("in.jsonl", b"{}\n"), purpose="batch").id
    rows = [r for r in fake_live.ledger().values() if r.status == 403]
    assert not rows  # refused before the gateway: nothing ran, nothing was ledgered
    # the endpoint's own refusal of a body without Content-Type is ledgered, as any 400 of a
    # generation endpoint (docs/deployment.md said no refusal here was)
    assert [r.error_code for r in fake_live.ledger().values() if r.status == 400] == [
        "invalid_value"
    ]


def test_clients_with_keys_reach_the_gateway_under_any_name(tmp_path: Path) -> None:
    """Once a key exists a page has none to send: any Host, Origin and a body without
    Content-Type are served to a client with a key (on a real socket, as the audit ran)."""
    settings = fake_settings(tmp_path)
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        key = arun(live.gateway.store.create_key("acme")).secret
        foreign = {"host": ATTACKER, "origin": "http://attacker.example:8080"}
        r = live.http.post("/v1/chat/completions", content=BODY, headers=foreign)
        assert_error(r, 401, code="invalid_api_key")
        r = live.http.post(
            "/v1/chat/completions",
            content=BODY,
            headers={**foreign, "authorization": f"Bearer {key}"},
        )
        assert r.status_code == 200, r.text
        live.http.close()


def test_open_local_mode_answers_the_hosts_its_operator_configured() -> None:
    local = LocalHosts()
    assert local.allows("127.0.0.1:8080") and local.allows("[::1]") and local.allows("localhost")
    assert not local.allows("10.0.0.5:8080") and not local.allows("gw.lan")
    assert not local.allows("127.0.0.1.attacker.example")
    assert not local.allows("localhost.attacker.example")
    # bound to the network (--allow-open): its addresses, never a name a page could own
    lan = LocalHosts(bind="0.0.0.0")
    assert lan.allows("10.0.0.5:8080") and lan.allows("[fe80::1]:8080")
    assert not lan.allows("gw.lan") and not lan.allows("attacker.example")
    named = LocalHosts(bind="gw.lan", allowed=("*.corp.example", "proxy.example"))
    assert named.allows("gw.lan:8080") and named.allows("a.corp.example")
    assert named.allows("PROXY.example.:443") and not named.allows("corp.example.evil")
    assert LocalHosts(allowed=("*",)).allows("anything.example")
    # names the operator lists are answered on loopback too (a reverse proxy's Host)
    assert LocalHosts(allowed=("proxy.example",)).allows("proxy.example")


def test_allowed_hosts_are_names_and_the_refusal_quotes_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial's finding: the refusal quoted the Host with its port ('gw.lan:8094'), the
    operator listed exactly that in server.allowed_hosts, and it never matched (the check
    compares names). An entry's port is dropped now, and the refusal quotes the name."""
    http_refused = {"host": "gw.lan:8094"}
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    with Live.in_process(build_app(fake_settings(tmp_path / "before"))) as live:
        r = live.http.get("/v1/models", headers=http_refused)
        err = assert_error(r, 400, code="untrusted_host")
        assert "Host 'gw.lan'" in err["message"] and "add 'gw.lan' to" in err["message"]
        assert "8094" not in err["message"]
    monkeypatch.setenv("BOUNDGATE_SERVER__ALLOWED_HOSTS", "GW.lan.:8094,[fe80::1]:80,*.corp:1")
    settings = fake_settings(tmp_path / "after")
    assert settings.server.allowed_hosts == ["gw.lan", "fe80::1", "*.corp"]
    with Live.in_process(build_app(settings)) as live:
        for host in ["gw.lan:8094", "gw.lan", "gw.lan:9", "a.corp:8080"]:
            assert live.http.get("/v1/models", headers={"host": host}).status_code == 200, host
    for bad in ["http://gw.lan:8094/", "gw.lan:http", "user@gw.lan", ""]:
        monkeypatch.setenv("BOUNDGATE_SERVER__ALLOWED_HOSTS", f'["{bad}"]')
        with pytest.raises(ConfigError, match="is not a host name: give the name only"):
            fake_settings(tmp_path)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.2", False),
        ("example.org", False),
    ],
)
def test_loopback_names_and_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_an_origin_is_the_requests_own_only_with_the_same_scheme_name_and_port() -> None:
    assert split_host("[::1]:8080") == ("::1", 8080) and split_host("Gw.Lan.") == ("gw.lan", None)
    assert same_origin("http://127.0.0.1:8080", "127.0.0.1:8080", "http")
    assert same_origin("http://localhost", "localhost:80", "http")
    assert same_origin("https://gw.lan", "gw.lan", "https")
    assert not same_origin("http://localhost:8080", "127.0.0.1:8080", "http")
    assert not same_origin("https://127.0.0.1:8080", "127.0.0.1:8080", "http")
    assert not same_origin("http://127.0.0.1:3000", "127.0.0.1:8080", "http")
    assert not same_origin("null", "127.0.0.1:8080", "http")
    assert not same_origin("http://127.0.0.1:8080", None, "http")


@pytest.mark.parametrize("keyed", [False, True])
def test_more_than_one_host_header_is_a_400(tmp_path: Path, keyed: bool) -> None:
    """A trial: "Host: localhost" then "Host: evil.com" got a 200 (the first was checked).
    RFC 9112 §3.2 has a server answer 400 to more than one Host, in every mode."""
    app = build_app(fake_settings(tmp_path))
    with ThreadedServer(app) as srv:
        if keyed:
            arun(app.state.gateway.store.create_key("acme"))
        raw = (
            b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n"
            b"Connection: close\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            sock.sendall(raw)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        status = int(answer.split(b" ", 2)[1])
        body = answer.split(b"\r\n\r\n", 1)[1]
        assert status == 400, answer
        assert json.loads(body)["error"]["param"] == "Host"
