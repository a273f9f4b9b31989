"""The local GraceDB's pages in headless Chromium (Playwright): what a person sees.

An advocate logs in, finds a superevent made through the stock client on the home page,
sees its labels and the sky-map PNG inline, signs off ADVOK through the page's form, and
GraceDB's API then shows the ADVOK label.  An anonymous visitor sees exposed superevents
only.  ``/api/docs`` renders Swagger UI without fetching anything from another host.
Screenshots: under each test's tmp path (and GW_OPS_TEST_SCREENSHOT_DIR when set).
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import save_screenshot
from tests.fixtures.gracedb import DATA
from tests.pages_world import (
    PNG_HEIGHT,
    PNG_WIDTH,
    home_url,
    make_superevent,
    new_account,
    sky_map_png,
)

pytestmark = pytest.mark.browser

T0 = 1360000000.0  # 2023-02-08 UTC: a day no other test file uses


@pytest.fixture(scope="module")
def world(gracedb_service):
    advocate_sid, _ = make_superevent(gracedb_service, T0, labels=["ADVREQ", "EM_READY"],
                                      png=sky_map_png(), voevent=True)
    public_sid, _ = make_superevent(gracedb_service, T0 + 100, labels=["EM_READY"],
                                    png=sky_map_png(), voevent=True, expose=True)
    hidden_sid, _ = make_superevent(gracedb_service, T0 + 200)
    external = gracedb_service.client().create_event(
        "External", "Fermi", "fermi.xml", search="GRB",
        filecontents=(DATA / "fermi-test.xml").read_bytes()).json()["graceid"]
    return {"sid": advocate_sid, "public": public_sid, "hidden": hidden_sid, "external": external,
            "advocate": new_account(gracedb_service, "ada.browser", ("advocate",))}


def log_in(page, home: str, name: str, password: str, next_path: str = "/") -> None:
    page.goto(f"{home}login/?next={next_path}")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#viewer")).to_contain_text(name)


def expect_image_loaded(page, image) -> dict:
    """Wait until ``image`` (a locator) has decoded; its natural size."""
    image.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    return image.evaluate("img => ({width: img.naturalWidth, height: img.naturalHeight})")


def test_advocate_finds_the_superevent_sees_its_sky_map_and_signs_off(
        gracedb_service, world, browser_context, tmp_path):
    home, sid = home_url(gracedb_service), world["sid"]
    page = browser_context.new_page()
    log_in(page, home, *world["advocate"])

    # the home page lists the superevent made through the client
    page.goto(home)
    row = page.locator("#superevents tbody tr", has=page.get_by_role("link", name=sid, exact=True))
    expect(row).to_contain_text("gstlal")
    expect(row).to_contain_text("ADVREQ")
    external = page.locator("#external-events tbody tr",
                            has=page.get_by_role("link", name=world["external"], exact=True))
    expect(external).to_contain_text("Fermi")
    save_screenshot(page, tmp_path, "gracedb-home")

    row.get_by_role("link", name=sid, exact=True).click()
    expect(page).to_have_url(f"{home}superevents/{sid}/view/")
    expect(page.locator("#superevent-id")).to_have_text(sid)
    labels = page.locator("#labels .label")
    expect(labels).to_have_text(["ADVREQ", "EM_READY"])
    image = page.locator("#log img.inline-image[alt='bayestar.png']")
    assert expect_image_loaded(page, image) == {"width": PNG_WIDTH, "height": PNG_HEIGHT}
    expect(page.locator("#voevents")).to_contain_text(f"ivo://gwnet/LVC#{sid}-1-Preliminary")
    form = page.locator("#signoff-form")
    expect(form).to_be_visible()
    save_screenshot(page, tmp_path, "gracedb-superevent-advocate")

    form.get_by_label("ADVOK").check()
    form.get_by_label("Comment").fill("Looks astrophysical <no glitches>")
    form.get_by_role("button", name="Sign off").click()
    expect(page.locator("#signoffs")).to_contain_text("ADV OK by ada.browser")
    expect(page.locator("#signoffs")).to_contain_text("Looks astrophysical <no glitches>")
    expect(page.locator("#signoff-form")).to_have_count(0)
    expect(labels).to_have_text(["EM_READY", "ADVOK"])
    save_screenshot(page, tmp_path, "gracedb-superevent-signed-off")

    # GraceDB itself (the API, as the pipeline reads it) has the label
    assert "ADVOK" in gracedb_service.client().superevent(sid).json()["labels"]

    # the preferred event's page, from the superevent page
    page.get_by_role("link", name=re.compile(r"^G\d+$")).first.click()
    expect(page.locator("#event-id")).to_have_text(re.compile(r"^G\d+$"))
    expect(page.locator("#event-facts")).to_contain_text(sid)
    save_screenshot(page, tmp_path, "gracedb-event")


def test_anonymous_visitor_sees_only_exposed_superevents(gracedb_service, world, browser_context,
                                                        tmp_path):
    home = home_url(gracedb_service)
    page = browser_context.new_page()
    page.goto(home)
    expect(page.get_by_role("link", name=world["public"], exact=True)).to_be_visible()
    expect(page.get_by_text(world["hidden"])).to_have_count(0)
    expect(page.get_by_text(world["sid"])).to_have_count(0)
    expect(page.locator("#login-link")).to_be_visible()
    expect(page.locator("#external-events")).to_have_count(0)  # events are never public
    save_screenshot(page, tmp_path, "gracedb-home-anonymous")

    page.get_by_role("link", name=world["public"], exact=True).click()
    expect(page.locator("#visibility")).to_have_text("Public")
    image = page.locator("#log img.inline-image[alt='bayestar.png']")
    assert expect_image_loaded(page, image)["width"] == PNG_WIDTH  # the public sky map
    expect(page.locator("#signoff-form")).to_have_count(0)
    save_screenshot(page, tmp_path, "gracedb-superevent-anonymous")

    answer = page.goto(f"{home}superevents/{world['hidden']}/view/")
    assert answer.status == 404
    expect(page.locator("#error-detail")).to_have_text("Not found.")


def test_api_docs_render_from_this_server_only(gracedb_service, browser_context, tmp_path):
    home = home_url(gracedb_service)
    page = browser_context.new_page()
    foreign = []
    page.on("request", lambda request: None if request.url.startswith(home)
            else foreign.append(request.url))
    page.goto(f"{home}api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("gw-ops local GraceDB")
    expect(page.locator(".opblock-summary-path", has_text="/api/superevents/{superevent_id}/labels/")
           .first).to_be_visible()
    save_screenshot(page, tmp_path, "gracedb-api-docs")
    assert foreign == []
