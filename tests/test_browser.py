"""The desk in a real browser: Playwright driving Debian's Chromium (by its executable
path: a browser download cannot work here). Browse, filter, open a development, page
through, give feedback and take it back; no page may break its own
Content-Security-Policy. In CI (CI=true) a missing Chromium fails instead of skipping.
MONITOR_SCREENSHOTS=DIR keeps each page's picture (the ones in docs/ come from here)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_web import Desktop, desktop  # noqa: F401  (the fixture)
from tests.test_web_auth import PASSWORDS, Site, site  # noqa: F401  (the fixture)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium as this machine runs it: headless, no sandbox as root, no calls home.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is needed for the browser tests: {CHROMIUM} is missing")
        pytest.skip("no Chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()


def shot(page: object, name: str) -> None:
    folder = os.environ.get("MONITOR_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_analyst_browses_filters_and_opens_a_development(
    desktop: Desktop,  # noqa: F811
    browser_page: object,
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    refused: list[str] = []
    page.on(
        "console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None
    )
    talks, strike = desktop.stories()

    page.goto(desktop.url + "/")
    expect(page.locator("h1")).to_have_text("Developments")
    expect(page.locator("figure.chart svg rect").first).to_be_visible()
    expect(page.locator("text=page 1 of 2")).to_be_visible()
    shot(page, "developments")

    # Narrow to one outlet with the form: only the strike is left, on one page.
    page.select_option("select[name=outlet]", label="Outlet 1")
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"[?&]outlet=\d+"))
    rows = page.locator("table.developments tbody tr a.development")
    expect(rows).to_have_count(1)
    assert rows.first.get_attribute("href") == f"/developments/{strike}"

    # Clear, go to the other page, open the talks from wherever they are listed.
    page.get_by_role("link", name="Clear", exact=True).click()
    for _ in range(2):
        link = page.locator(f'a[href="/developments/{talks}"]')
        if link.count():
            break
        page.click("a[rel=next]")
    link.click()
    expect(page.locator("h2", has_text="Reports")).to_have_text("Reports (4)")
    expect(page.locator("ol.reports > li")).to_have_count(4)
    expect(page.locator("table.deliveries")).to_contain_text("delivered")
    # The hostile report's title is text, and nothing it carried ran.
    assert page.evaluate("document.scripts.length") == 0
    shot(page, "development")

    # Feedback: mark it not relevant (a roundup), see it gone from the list, take it back.
    page.select_option("select[name=reason]", "roundup")
    page.get_by_role("button", name="Mark not relevant").click()
    expect(page.locator(".facts .state-dismissed")).to_have_text("dismissed")
    expect(page.locator("form.given")).to_contain_text("not-relevant (roundup)")
    page.goto(desktop.url + "/")
    expect(page.locator(f'a[href="/developments/{talks}"]')).to_have_count(0)
    page.goto(f"{desktop.url}/developments/{talks}")
    page.get_by_role("button", name="Undo").click()
    expect(page.locator(".facts .state-alerted")).to_have_text("alerted")
    expect(page.locator("form.given")).to_contain_text("undone")

    page.get_by_role("link", name="Feeds", exact=True).click()
    expect(page.locator("tr.failing")).to_contain_text("broken.xml")
    shot(page, "feeds")

    # Search what was stored, on topic or not.
    page.get_by_role("link", name="Search", exact=True).click()
    page.fill("input[name=q]", "lanes")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("p.count")).to_have_text(re.compile(r"^6 entries"))
    shot(page, "search")

    # A draft profile with one more topic, previewed on the stored history.
    page.get_by_role("link", name="Topics", exact=True).click()
    draft = page.locator("textarea[name=draft]")
    draft.fill(
        draft.input_value()
        + '\n[concepts.cycling]\nterms = ["lanes"]\n[[topics]]\nid = "cycling"\n'
        + 'title = "Cycling"\ndescription = "Lanes."\nrequire = [["cycling"]]\n'
    )
    page.fill("input[name=days]", "30")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("h3", has_text="The draft would add")).to_have_text(
        "The draft would add (6)"
    )
    shot(page, "topics")
    assert refused == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_reader_signs_in_where_a_login_is_required(
    site: Site,  # noqa: F811
    browser_page: object,
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    page.goto(site.url + f"/developments/{site.dev}")
    expect(page).to_have_url(re.compile(r"/login\?next="))  # sent to sign in first
    expect(page.locator("h1")).to_have_text("Sign in")
    page.fill("input[name=name]", "ana")
    page.fill("input[name=password]", "not it")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("Wrong name or password.")
    page.fill("input[name=name]", "ana")
    page.fill("input[name=password]", PASSWORDS["ana"])
    page.click("button[type=submit]")
    expect(page).to_have_url(site.url + f"/developments/{site.dev}")  # back where it was going
    expect(page.locator(".who")).to_contain_text("ana (editor)")
    shot(page, "signed-in")
    page.click("text=Sign out")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.goto(site.url + "/")
    expect(page).to_have_url(re.compile(r"/login"))
