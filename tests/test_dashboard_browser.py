"""The dashboard in a real browser: Debian's Chromium driven by playwright.

Every page renders from a seeded store at desktop and phone widths with no console error and
no request leaving the machine; login and a revoke round-trip work by clicking. Screenshots
land in tests/artifacts/ (ignored by git) for a human to look at.

Chromium is installed by `make test` (scripts/ensure-chromium.sh); where it cannot be
installed these tests are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from dashboard_seed import Seeded
from helpers import arun

pytestmark = pytest.mark.slow  # a real browser

CHROMIUM = os.environ.get("BOUNDGATE_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
PAGES = {
    "overview": "/dashboard",
    "documents": "/dashboard/documents",
    "ledger": "/dashboard/ledger",
    "grid": "/dashboard/grid",
    "tenants": "/dashboard/tenants",
}
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium with apt-get "
        "(scripts/ensure-chromium.sh); it could not be installed on this machine",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


class Watch:
    """Collects console errors, page errors and any request to a non-local host."""

    def __init__(self, page: Any, base: str) -> None:
        self.errors: list[str] = []
        self.outside: list[str] = []
        local = urlsplit(base).netloc
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

        def route(r: Any) -> None:
            url = r.request.url
            if url.startswith(("data:", "blob:")) or urlsplit(url).netloc == local:
                r.continue_()
            else:
                self.outside.append(url)
                r.abort()

        page.route("**/*", route)

    def clean(self) -> None:
        assert self.outside == [], f"requests left the server: {self.outside}"
        assert self.errors == [], f"console errors: {self.errors}"


def test_every_page_renders_at_desktop_and_phone_width(chromium: Any, open_dash: Seeded) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    base = open_dash.live.base
    for width_name, (w, h) in WIDTHS.items():
        ctx = chromium.new_context(viewport={"width": w, "height": h})
        page = ctx.new_page()
        watch = Watch(page, base)
        for name, path in {**PAGES, "document": f"/dashboard/documents/{open_dash.doc_id}"}.items():
            resp = page.goto(base + path)
            assert resp is not None and resp.status == 200, (name, width_name)
            page.wait_for_load_state("networkidle")
            assert page.locator("h1").first.is_visible()
            # no horizontal page overflow: wide tables scroll inside their own box
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, (name, width_name, overflow)
            # every chart canvas got drawn (Chart.js sets its size)
            for canvas in page.locator("canvas[data-chart]").all():
                box = canvas.bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 100, name
            page.screenshot(
                path=str(ARTIFACTS / f"dashboard-{name}-{width_name}.png"), full_page=True
            )
        watch.clean()
        ctx.close()


def test_every_form_control_has_a_label(chromium: Any, open_dash: Seeded) -> None:
    page = chromium.new_page()
    for path in [*PAGES.values(), f"/dashboard/documents/{open_dash.doc_id}"]:
        page.goto(open_dash.live.base + path)
        unlabeled = page.evaluate(
            "() => [...document.querySelectorAll("
            "'input:not([type=hidden]), select, meter, progress, canvas')]"
            ".filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))"
            ".map(el => el.outerHTML.slice(0, 80))"
        )
        assert unlabeled == [], (path, unlabeled)
    page.close()


def test_login_and_revoke_round_trip_by_clicking(chromium: Any, keyed_dash: Seeded) -> None:
    base = keyed_dash.live.base
    ctx = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    watch = Watch(page, base)
    page.goto(base + f"/dashboard/documents/{keyed_dash.doc_id}")
    assert "/dashboard/login" in page.url
    page.get_by_label("Admin API key").fill("bg_wrong")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Unknown or revoked key."
    page.get_by_label("Admin API key").fill(str(keyed_dash.admin_key))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/dashboard/documents/{keyed_dash.doc_id}")
    assert page.get_by_text("valid", exact=True).is_visible()
    page.get_by_role("button", name="Revoke this document").click()
    page.wait_for_url("**notice=revoked")
    assert page.get_by_role("status").inner_text().startswith("Document revoked")
    doc = arun(keyed_dash.live.gateway.store.get_document(keyed_dash.doc_id))
    assert doc is not None and doc.state == "revoked"
    # the API agrees: the revoked answer is no longer served
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-revoked.png"), full_page=True)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/dashboard/login**")
    page.goto(base + "/dashboard")
    assert "/dashboard/login" in page.url
    watch.clean()
    ctx.close()


def test_ledger_filter_and_export_in_the_browser(chromium: Any, open_dash: Seeded) -> None:
    ctx = chromium.new_context(accept_downloads=True)
    page = ctx.new_page()
    watch = Watch(page, open_dash.live.base)
    page.goto(open_dash.live.base + "/dashboard/ledger")
    page.get_by_label("Reuse").select_option("hit-semantic")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**reuse=hit-semantic**")
    with page.expect_download() as dl:
        page.get_by_role("link", name="Export CSV").click()
    text = Path(dl.value.path()).read_text()
    assert text.splitlines()[0].startswith("id,time_utc,tenant")
    assert len(text.splitlines()) == 1 + 12
    watch.clean()
    ctx.close()
