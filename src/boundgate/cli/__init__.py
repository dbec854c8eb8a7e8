"""The ``boundgate`` command line (typer + rich)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import json
import math
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .. import __version__
from ..fmt import plain_decimal
from ..settings import ConfigError, Settings, describe, load_settings
from ..tenants import OPEN_TENANT, TENANT_NAME, TENANT_NAME_RULE, UNAUTHENTICATED
from .console import err as err
from .console import fail as fail
from .console import out as out

if TYPE_CHECKING:
    import httpx

    from ..store import Store

# Help is rendered as Markdown: docstrings' paragraphs are reflowed to the terminal (typer's
# "rich" mode keeps each source line break), and `code` shows as code, not as backticks.
app = typer.Typer(
    help="boundgate: an OpenAI-compatible gateway that meters energy and carbon.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (or BOUNDGATE_CONFIG)."),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (store, keys).")
]


def _settings(config: Path | None, **server: Any) -> Settings:
    try:
        return load_settings(config, {"server": server})
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def store_missing(settings: Settings) -> bool:
    """The store is SQLite (no ``store.url``) and its file does not exist yet: opening it
    would create an empty one, in ``./.boundgate`` when neither ``--config`` nor
    ``--data-dir`` says where."""
    return settings.store.url is None and not settings.db_path.exists()


def no_store(settings: Settings) -> str:
    """Why a command that only reads or changes what is stored refuses when ``store_missing``:
    the database file it looked for, and how to point it at the server's. A data directory
    that holds a gateway's files but no SQLite store is most likely a PostgreSQL replica's
    (a trial's `keys list --data-dir` on one was told nothing had been served there)."""
    data_dir = settings.server.data_dir
    used = data_dir.is_dir() and any(data_dir.iterdir())
    if used:
        return (
            f"no boundgate store at {settings.db_path.resolve()}, though {data_dir.resolve()} "
            "holds a gateway's files: if its store is PostgreSQL, give the config file that "
            "sets store.url with --config (or set BOUNDGATE_STORE__URL)"
        )
    return (
        f"no boundgate store at {settings.db_path.resolve()} (nothing has been served or set "
        "up with this data directory): run this in the server's directory, or give its config "
        "file with --config or its data directory with --data-dir"
    )


def store_named(settings: Settings) -> str:
    """The store a command works on, as its messages name it."""
    from ..settings import redact_url

    if settings.store.url is not None:
        return f"the PostgreSQL store {redact_url(settings.store.url)}"
    return f"the SQLite store {settings.db_path.resolve()}"


def store_pointed(config: Path | None, data_dir: Path | None) -> bool:
    """Whether the command was told which store to use: ``--config``, ``--data-dir`` or
    ``BOUNDGATE_CONFIG``."""
    return config is not None or data_dir is not None or bool(os.environ.get("BOUNDGATE_CONFIG"))


def warn_new_store(store: str, before: str, to: str, *, pointed: bool = False) -> None:
    """Tell (stderr) that ``store`` did not exist ``before`` this command (``store_missing``
    said so; opening it created it). Without --config or --data-dir (``pointed`` False) it
    is ``./.boundgate``'s, which a server configured elsewhere never reads: a warning that
    says how to name the server's. With them (``store_pointed``), a note only: a first key
    made before the first ``serve`` is set-up, not a mistake, and "give --config" would tell
    the user to do what they did (a trial's finding). ``to``: what the user meant to do."""
    if pointed:
        err.print(
            escape(f"note: {store} did not exist before {before}; it was created here"),
            markup=False,
            highlight=False,
        )
        return
    err.print(
        "[yellow]warning:[/yellow] "
        + escape(
            f"{store} did not exist before {before}, so no server uses it yet; to {to}, give "
            "the server's config file with --config (or its data directory with --data-dir)"
        ),
        markup=True,
        highlight=False,
    )


@contextmanager
def opened_store(settings: Settings, *, existing: bool = False) -> Iterator[Store]:
    """The configured store (``store.url``, else SQLite in the data dir), open for the
    ``with`` block and closed after it; exits 2 with the reason when it cannot be opened.
    ``existing`` (commands that only read or change what is there): a data dir without a
    SQLite store exits 2 saying so (``no_store``) and creates nothing, instead of creating an
    empty store there (a mistyped ``--data-dir`` printed an empty report)."""
    from ..assembly import build_store, open_store

    data_dir = settings.server.data_dir
    if (
        existing
        and store_missing(settings)
        and (data_dir.is_dir() or not data_dir.exists())  # else: what SQLite says (exit 2)
    ):
        raise fail(no_store(settings), 2)
    try:
        store = build_store(settings)
        open_store(store, settings)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    try:
        yield store
    finally:
        store.close()


def _signing_key(store: Store, data_dir: Path) -> None:
    """The data directory's signing key, made now if it has none and may (before the
    workers start: they all load this one); a key that is lost while the store holds
    documents signed with it, or a file that is no key, is one line and exit 2
    (``reuse.documents.load_signer``)."""
    from ..reuse.documents import load_signer

    try:
        asyncio.run(load_signer(store, data_dir))
    except ValueError as exc:
        raise fail(str(exc), 2) from None


def api_base_url(url: str) -> str:
    """The API base of a server URL given to ``--url``: every route is under ``/v1``, so a
    URL whose path has no ``/v1`` segment (``http://127.0.0.1:8080``, or a proxy's prefix such
    as ``https://host/boundgate/``) gets it appended, and one with an endpoint pasted after it
    (``…/v1/chat/completions``) is cut back to it; one without a scheme (``localhost:8091``)
    is ``http://``. No trailing slash."""
    base = url.strip().rstrip("/")
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", base):
        base = "http://" + base
    found = list(re.finditer(r"/v1(?=/|$)", base, re.IGNORECASE))
    return base[: found[-1].start()] + "/v1" if found else base + "/v1"


UrlOpt = Annotated[
    str | None,
    typer.Option(
        help="Server URL; /v1 is added if missing (default: the configured server.host and "
        "server.port, http://127.0.0.1:8080 without a config)."
    ),
]


def _api_key(value: str | None) -> str | None:
    """An API key as HTTP can carry it: visible ASCII (RFC 9110 §5.5 field values; RFC 6750's
    bearer tokens are a subset). A trial's "é" was a UnicodeEncodeError traceback."""
    if value is not None and not re.fullmatch(r"[\x21-\x7e]*", value):
        raise typer.BadParameter(
            "an API key is visible ASCII characters only (no spaces, no other characters)"
        )
    return value


KeyOpt = Annotated[
    str | None,
    typer.Option(envvar="BOUNDGATE_API_KEY", help="API key.", callback=_api_key),
]


def bearer(api_key: str | None) -> dict[str, str]:
    """The ``Authorization`` header for ``api_key`` (none without one)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _finite(value: float) -> float:
    """A float option's value, refused when not finite (a trial's ``--temperature nan`` was a
    traceback: JSON has no NaN nor infinity)."""
    if not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, not {value}")
    return value


def server_url(url: str | None, config: Path | None) -> str:
    """``url`` (``--url``) when given, else the server the configuration serves on
    (``server.host`` and ``server.port`` of ``--config`` / ``BOUNDGATE_CONFIG`` and the
    ``BOUNDGATE_*`` environment; a wildcard host such as 0.0.0.0 is reached at 127.0.0.1).
    Exits 2 on a configuration error."""
    if url:
        return url
    server = _settings(config).server
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
    return f"http://{_url_host(host)}:{server.port}/v1"


@contextmanager
def reaching(url: str) -> Iterator[None]:
    """Turn a failure to talk to the server at ``url`` (refused, unknown host, a URL httpx
    cannot use) into one line on stderr and exit status 1, instead of a traceback."""
    import httpx

    try:
        yield
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        err.print(f"cannot reach {url}: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None


def exit_on_http_error(resp: httpx.Response) -> None:
    """Print the gateway's OpenAI-shaped error message and exit 1, if ``resp`` is an error; a
    401 also says how the commands that call a server (``ask``, ``batch``) take a key."""
    if resp.status_code < 400:
        return
    try:
        message = resp.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = resp.text
    if resp.status_code == 401:
        message += "; give this command a key with --api-key or BOUNDGATE_API_KEY"
    err.print(f"error {resp.status_code}: {message}", highlight=False)
    raise typer.Exit(1)


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    data_dir: DataDirOpt = None,
    allow_open: Annotated[
        bool,
        typer.Option("--allow-open", help="Serve a non-loopback host without API keys."),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes on this port, over the shared store."),
    ] = None,
) -> None:
    """Serve the OpenAI-compatible API."""
    import uvicorn

    from ..assembly import build_app
    from ..server.connections import with_header_timeout
    from ..server.local import is_loopback

    settings = _settings(
        config,
        host=host,
        port=port,
        data_dir=data_dir,
        allow_open_remote=True if allow_open else None,
        workers=workers,
    )
    s = settings.server
    if s.data_dir.is_dir() and not os.access(s.data_dir, os.W_OK):
        # the server writes its store, indexes and key there: a read-only directory was a
        # traceback after "serving http://…" (an operator's trial)
        raise fail(f"the data directory {s.data_dir} is not writable", 2)
    # bound first, before anything is made (the data directory, its store and signing key)
    # or claims to serve, and before models load: a port in use is a one-line error at once,
    # alone, that leaves nothing behind, not a traceback after the start-up; so is open
    # mode refused for a host that is not loopback
    sock = _listen(s.host, s.port)
    try:
        # open mode refused before anything is made: a data dir without a store has no keys
        refuse_open = not is_loopback(s.host) and not s.allow_open_remote
        open_mode = store_missing(settings)
        if not (open_mode and refuse_open):
            with opened_store(settings) as store:
                open_mode = not asyncio.run(store.has_keys())
                if settings.reuse.enabled and not (open_mode and refuse_open):
                    _signing_key(store, s.data_dir)
        if open_mode and refuse_open:
            err.print(
                f"refusing to serve {s.host} in open mode (no API keys exist). Create a key "
                "with `boundgate keys create --tenant NAME`, or pass --allow-open."
            )
            raise typer.Exit(2)
    except BaseException:  # (typer.Exit included)
        sock.close()
        raise
    if open_mode:
        err.print(
            "[yellow]open local mode:[/yellow] no API keys exist, so every request is "
            "accepted as tenant 'local'. Create a key to require authentication.",
            markup=True,
        )
    from .progress import Steps

    assembling = Steps()
    try:
        assembling.update("assembling the gateway")
        application = build_app(settings)
    except (ConfigError, FileNotFoundError) as exc:
        sock.close()
        raise fail(str(exc), 2) from None
    finally:
        assembling.finish()
    application.state.startup = Steps()  # models and stored answers load in the lifespan
    gw = application.state.gateway
    if settings.store.url is not None:
        from ..settings import redact_url

        where = f"store PostgreSQL {redact_url(settings.store.url)}, files in {s.data_dir}"
    else:
        where = f"data in {s.data_dir}"
    err.print(
        f"boundgate {__version__}: models {', '.join(gw.backends)} (default {gw.default_model}); "
        f"grid zone {s.grid_zone} ({settings.grid.source}); {where}; "
        f"serving http://{_url_host(s.host)}:{sock.getsockname()[1]}/v1",
        highlight=False,
    )
    r = settings.reuse
    err.print(
        f"reuse {'on' if r.enabled else 'off'} (temperature ≤ {r.max_temperature}, "
        f"error bound δ = {r.error_bound}); deferrable work: {settings.scheduler.policy} policy",
        highlight=False,
    )
    if settings.dashboard.enabled:
        err.print(
            f"dashboard: http://{_url_host(s.host)}:{sock.getsockname()[1]}/dashboard",
            highlight=False,
        )

    def served(app: Any, **kwargs: Any) -> uvicorn.Config:
        """uvicorn's configuration for ``app`` on these settings, with the deadline for a
        request's headers (``server/connections.py``)."""
        config = uvicorn.Config(
            app,
            host=s.host,
            port=s.port,
            log_level=s.log_level,
            log_config=log_config(s.log_level),
            timeout_graceful_shutdown=10,
            **kwargs,
        )
        return with_header_timeout(config, s.header_read_timeout_s)

    if s.workers > 1:
        # each worker builds its own gateway from these settings (cli/workers.py); the one
        # built here checked them and created the data dir's secrets, so workers starting
        # together never race to create different signing keys
        del application, gw
        err.print(f"{s.workers} worker processes", highlight=False)
        os.environ[WORKER_SETTINGS_ENV] = settings.model_dump_json()
        os.environ[WORKER_PARENT_ENV] = str(os.getpid())  # workers exit when it dies
        from uvicorn.supervisors import Multiprocess

        worker_config = served("boundgate.cli.workers:app", factory=True, workers=s.workers)
        with contextlib.suppress(KeyboardInterrupt):
            Multiprocess(worker_config, sockets=[sock]).run()
        return
    server = uvicorn.Server(served(application))
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:  # start-up failed; the server log says why
        raise typer.Exit(3)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration with boundgate's own loggers (``boundgate.*``) on its
    handler at ``server.log_level``. Without it they had no handler, and Python printed only
    their warnings: the start-up's index summary and the re-embedding's progress, logged at
    info, never appeared."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["boundgate"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` for uvicorn to serve on (as uvicorn binds one:
    IPv6 when the host has a colon, ``SO_REUSEADDR``, inheritable by worker processes).
    Exits 1 with a one-line reason when the address cannot be bound (in use, not this
    machine's, a privileged port)."""
    sock = socket.socket(family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = "; another process is listening there (choose a port with --port)"
        err.print(
            f"error: cannot listen on {_url_host(host)}:{port}: {reason}{hint}", highlight=False
        )
        raise typer.Exit(1) from None
    sock.set_inheritable(True)
    return sock


@app.command()
def ask(
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[str | None, typer.Option(help="Model id (default: server's).")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    max_tokens: Annotated[int, typer.Option(help="Longest answer in tokens.")] = 256,
    temperature: Annotated[
        float, typer.Option(help="Sampling temperature.", callback=_finite)
    ] = 0.0,
    config: ConfigOpt = None,
) -> None:
    """Ask a running server and stream the answer.

    Then say how it was obtained (generated, or reused and how), its energy and carbon, and
    what reuse or right-sizing avoided."""
    import httpx

    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    if model:
        body["model"] = model
    url = server_url(url, config)
    info: dict[str, Any] = {}
    with (
        reaching(url),
        httpx.stream(
            "POST",
            api_base_url(url) + "/chat/completions",
            json=body,
            headers=bearer(api_key),
            timeout=300,
        ) as resp,
    ):
        if resp.status_code >= 400:
            resp.read()
            exit_on_http_error(resp)
        kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "text/event-stream":  # a trial's server answered JSON: nothing was printed
            raise fail(
                f"{url} did not stream the answer (content-type {kind or 'none'}, not "
                "text/event-stream): is it an OpenAI-compatible server?"
            )
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                err.print(f"\nerror: {event['error'].get('message')}", highlight=False)
                raise typer.Exit(1)
            for choice in event.get("choices") or []:
                sys.stdout.write(choice.get("delta", {}).get("content") or "")
                sys.stdout.flush()
            info = event.get("boundgate") or info
    sys.stdout.write("\n")
    sys.stdout.flush()
    if info:
        err.print(f"[dim]{escape(answer_summary(info))}[/dim]", markup=True, highlight=False)


def answer_summary(info: dict[str, Any]) -> str:
    """What ``ask`` says of an answer from its ``boundgate`` object: how it was obtained,
    what it cost (a reused answer: the lookup), and what reuse or right-sizing avoided. Plain
    decimals as in the response headers (``fmt.plain_decimal``, to three significant digits),
    so a small figure is never rounded to 0."""
    reuse = info.get("reuse")
    reused = reuse is not None and (reuse.startswith("hit-") or reuse == "stale")
    how = f"reused ({reuse})" if reused else "generated"
    if reuse == "bypass":
        how += " (reuse bypassed)"
    low, high = info["energy_range_wh"]
    spent = "the lookup used " if reused else ""
    lines = [
        f"{how}: {spent}{_figure(info['energy_wh'])} Wh ({_figure(low)} to "
        f"{_figure(high)}, {info['energy_method']}), {_figure(info['carbon_g'])} "
        f"gCO2e in {info['grid_zone']}"
    ]
    if reused and info.get("avoided_wh"):
        lines.append(
            f"avoided by reuse: {_figure(info['avoided_wh'])} Wh, "
            f"{_figure(info.get('avoided_gco2') or 0.0)} gCO2e (the stored answer's "
            "generation, here and now)"
        )
    if info.get("rightsizing_avoided_wh"):
        lines.append(
            f"avoided by right-sizing: {_figure(info['rightsizing_avoided_wh'])} Wh, "
            f"{_figure(info.get('rightsizing_avoided_gco2') or 0.0)} gCO2e (estimate)"
        )
    return "\n".join(lines)


def _figure(x: float) -> str:
    return plain_decimal(x, digits=3)


# the largest limit a store keeps (SQLite's and PostgreSQL's 64-bit signed INTEGER / bigint)
MAX_LIMIT = 2**63 - 1
# tenant names the gateway writes in the ledger itself (tenants.OPEN_TENANT and
# tenants.UNAUTHENTICATED): a key's usage would be mixed with theirs in every report
RESERVED_TENANTS = {
    OPEN_TENANT.name: "open local mode's requests (no keys)",
    UNAUTHENTICATED.name: "requests refused before a key was read",
}


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to.")],
    admin: Annotated[bool, typer.Option(help="May use admin routes.")] = False,
    rpm: Annotated[
        int | None,
        typer.Option(min=0, max=MAX_LIMIT, help="Its requests per minute (0 = unlimited)."),
    ] = None,
    daily_tokens: Annotated[
        int | None,
        typer.Option(min=0, max=MAX_LIMIT, help="Its tokens per UTC day (0 = unlimited)."),
    ] = None,
    daily_reasoning_tokens: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_LIMIT,
            help="Its reasoning tokens per UTC day on reasoning models (0 = unlimited).",
        ),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a key and print it once (only a salted hash is stored).

    Its limits are its own and counted for it alone: the keys of one tenant never share a
    budget. A limit it does not set is the settings' default (limits.rpm, limits.daily_tokens,
    limits.daily_reasoning_tokens), again counted for it alone."""
    if not re.fullmatch(TENANT_NAME, tenant):
        err.print(f"tenant: use {TENANT_NAME_RULE}")
        raise typer.Exit(2)
    if tenant in RESERVED_TENANTS:
        err.print(
            f"tenant: {tenant!r} is the gateway's own name for "
            f"{RESERVED_TENANTS[tenant]}; choose another name"
        )
        raise typer.Exit(2)
    settings = _settings(config, data_dir=data_dir)
    created = store_missing(settings)
    with opened_store(settings) as store:
        if created:  # a key no server checks (a trial's, made in another directory)
            warn_new_store(
                store_named(settings),
                "this command",
                "create a key for a server",
                pointed=store_pointed(config, data_dir),
            )
        new = asyncio.run(
            store.create_key(
                tenant,
                admin=admin,
                rpm=rpm,
                daily_tokens=daily_tokens,
                daily_reasoning_tokens=daily_reasoning_tokens,
            )
        )
    err.print(
        f"created key {new.key.id} for tenant {tenant}{' (admin)' if admin else ''}; "
        "it is shown once:",
        highlight=False,
    )
    print(new.secret)


@keys_app.command("list")
def keys_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List keys (ids and tenants, never secrets)."""
    with opened_store(_settings(config, data_dir=data_dir), existing=True) as store:
        rows = asyncio.run(store.list_keys())
    table = Table(
        "id",
        "tenant",
        "admin",
        "created (UTC)",
        "revoked",
        "rpm",
        "daily tokens",
        "daily reasoning tokens",
    )
    for k in rows:
        table.add_row(
            k.id,
            k.tenant,
            "yes" if k.admin else "",
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(k.created)),
            "yes" if k.revoked else "",
            "" if k.rpm is None else str(k.rpm),
            "" if k.daily_tokens is None else str(k.daily_tokens),
            "" if k.daily_reasoning_tokens is None else str(k.daily_reasoning_tokens),
        )
    out.print(table)


def _key_id_given(given: str) -> tuple[str, str]:
    """(the key id, how to name it in a message) of a command's KEY_ID argument: an id, or a
    whole key (bg-<id>-<secret>) whose id is read from it; a secret is never echoed whole."""
    from ..store.keys import key_id_of

    if (inner := key_id_of(given)) is not None:
        return inner, inner
    if len(given) > 8 and not re.fullmatch(r"[0-9a-f]+", given):
        return given, f"{given[:11]}…"  # may be a mistyped secret: not echoed whole
    return given, given


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (from `keys list`), or the key itself.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke a key; requests using it get 401 from then on.

    Given the whole key (bg-<id>-<secret>), its id is read from it; the secret is never
    printed back."""
    key_id, shown = _key_id_given(key_id)
    with opened_store(_settings(config, data_dir=data_dir), existing=True) as store:
        before = {k.id: k.revoked for k in asyncio.run(store.list_keys())}
        ok = key_id in before and asyncio.run(store.revoke_key(key_id))
    if not ok:
        err.print(f"no such key: {shown} (see `boundgate keys list`)", highlight=False)
        raise typer.Exit(2)
    err.print(f"{'already revoked' if before[key_id] else 'revoked'} {key_id}", highlight=False)


@keys_app.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="Key id (from `keys list`), or the key itself.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Replace a key with a new one of the same tenant, admin flag and limits, and revoke it.

    Limits are counted per key, so the new key takes over the old one's tokens and reasoning
    tokens used today (UTC): rotating does not reset a daily budget. The new key is printed
    once; requests with the old one get 401 from then on."""
    import time

    from ..tenants import rotate_key

    key_id, shown = _key_id_given(key_id)
    with opened_store(_settings(config, data_dir=data_dir), existing=True) as store:
        old = next((k for k in asyncio.run(store.list_keys()) if k.id == key_id), None)
        if old is None:
            err.print(f"no such key: {shown} (see `boundgate keys list`)", highlight=False)
            raise typer.Exit(2)
        try:
            done = asyncio.run(rotate_key(store, old, time.time()))
        except ValueError as exc:
            err.print(str(exc), highlight=False)
            raise typer.Exit(2) from None
    err.print(
        f"revoked {old.id}; created key {done.new.key.id} for tenant {old.tenant}"
        f"{' (admin)' if old.admin else ''} with its limits, carrying today's "
        f"{done.tokens_today} tokens and {done.reasoning_tokens_today} reasoning tokens; "
        "it is shown once:",
        highlight=False,
    )
    print(done.new.secret)


@app.command("settings")
def show_settings(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Every setting, its value, and where the value came from.

    With --data-dir: the settings the other commands use when given that flag too
    (server.data_dir from the command line)."""
    if fmt not in ("table", "json"):
        raise typer.BadParameter("use table or json", param_hint="'--format'")
    settings = _settings(config, data_dir=data_dir)
    items = list(describe(settings, config, {"server.data_dir"} if data_dir else None))
    if fmt == "json":
        print(
            json.dumps(
                [{"key": i.key, "value": i.value, "source": i.source} for i in items],
                indent=2,
                default=str,
            )
        )
        return
    table = Table("setting", "value", "source", "meaning")
    for i in items:
        table.add_row(i.key, str(i.value), i.source, i.description)
    out.print(table)


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


from .docs import docs_app  # noqa: E402  (needs the helpers above)
from .models import models_app  # noqa: E402
from .report import report  # noqa: E402
from .schedule import batch_app, grid_app, schedule_app  # noqa: E402
from .workers import WORKER_PARENT_ENV, WORKER_SETTINGS_ENV  # noqa: E402

app.command()(report)

app.add_typer(models_app, name="models")
app.add_typer(docs_app, name="docs")
app.add_typer(schedule_app, name="schedule")
app.add_typer(grid_app, name="grid")
app.add_typer(batch_app, name="batch")


def main() -> None:
    """The ``boundgate`` command. What the machine refuses a command (a file or directory it
    cannot read or write: a read-only data directory, ``--out`` in a directory that does not
    exist; a database SQLite cannot write) is one line naming it and exit 2, not a
    traceback (an operator's trial: ``docs revoke``, ``keys create``, ``docs import`` on a
    read-only data directory, ``batch results --out /nonexistent/x``)."""
    import sqlite3

    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        app()
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}", 2)
        raise SystemExit(2) from None
    except sqlite3.OperationalError as exc:  # "attempt to write a readonly database"
        fail(f"the SQLite store: {exc}", 2)
        raise SystemExit(2) from None
