"""The local GraceDB's web pages over HTTP (no browser): who sees what, escaping, the
login, the signoff form's token, and the ``EventPage`` URL of a VOEvent.

The same pages in a real browser: tests/test_browser_gracedb.py.
"""
from __future__ import annotations

import re

import pytest
import requests
from lxml import etree

from gw_ops.formats.alert_content import ivorn, voevent_filename
from tests.pages_world import (
    form_token,
    home_url,
    logged_in_session,
    make_superevent,
    new_account,
)

T0 = 1350000000.0  # 2022-10-16 UTC: a day no other test file uses


@pytest.fixture(scope="module")
def world(gracedb_service):
    hidden, hidden_event = make_superevent(gracedb_service, T0, labels=["ADVREQ"],
                                           comment="<script>alert('x')</script> & <b>bold</b>")
    public, _ = make_superevent(gracedb_service, T0 + 100, labels=["EM_READY"], voevent=True,
                                expose=True)
    # a non-public log message of the public superevent: anonymous readers must not see it
    gracedb_service.client().write_log(public, "internal note: not for the public")
    return {"hidden": hidden, "hidden_event": hidden_event, "public": public,
            "advocate": new_account(gracedb_service, "ada.pages", ("advocate",)),
            "member": new_account(gracedb_service, "member.pages", ())}


def test_anonymous_readers_see_exposed_superevents_only(gracedb_service, world):
    home = home_url(gracedb_service)
    page = requests.get(home, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert world["public"] in page.text and world["hidden"] not in page.text
    assert "External events" not in page.text  # events are never public
    # a hidden superevent answers exactly as one that does not exist (only the echoed URL differs)
    for hidden, missing in ((f"superevents/{world['hidden']}", "superevents/S991231zz"),
                            (f"events/{world['hidden_event']}", "events/G999999")):
        answers = [requests.get(f"{home}{path}/view/", timeout=10) for path in (hidden, missing)]
        assert [a.status_code for a in answers] == [404, 404]
        assert answers[0].text.replace(hidden, "X") == answers[1].text.replace(missing, "X")
        assert "log in" in answers[0].text
    public = requests.get(f"{home}superevents/{world['public']}/view/", timeout=10)
    assert public.status_code == 200 and "EM_READY" in public.text
    assert "not for the public" not in public.text and 'id="signoff-form"' not in public.text


def test_logged_in_reader_sees_everything_but_no_signoff_form_without_the_role(gracedb_service,
                                                                               world):
    session = logged_in_session(gracedb_service, *world["member"])
    home = home_url(gracedb_service)
    page = session.get(home, timeout=10).text
    assert world["hidden"] in page and world["public"] in page and "External events" in page
    superevent = session.get(f"{home}superevents/{world['hidden']}/view/", timeout=10)
    assert superevent.status_code == 200 and "ADVREQ" in superevent.text
    assert 'id="signoff-form"' not in superevent.text and "needs the advocate role" in superevent.text
    event = session.get(f"{home}events/{world['hidden_event']}/view/", timeout=10)
    assert event.status_code == 200 and world["hidden"] in event.text
    refused = session.post(f"{home}superevents/{world['hidden']}/view/signoff/",
                           data={"decision": "ADVOK", "token": "x"}, timeout=10)
    assert refused.status_code == 403


def test_every_value_is_escaped(gracedb_service, world):
    session = logged_in_session(gracedb_service, *world["member"])
    page = session.get(f"{home_url(gracedb_service)}superevents/{world['hidden']}/view/",
                       timeout=10)
    assert "<script>" not in page.text and "<b>bold</b>" not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # no scripts at all
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_signoff_needs_the_form_token_of_this_superevent(gracedb_service, world):
    home = home_url(gracedb_service)
    advocate = logged_in_session(gracedb_service, *world["advocate"])
    public_page = advocate.get(f"{home}superevents/{world['public']}/view/", timeout=10).text
    other_token = form_token(public_page, "signoff-form")
    url = f"{home}superevents/{world['hidden']}/view/signoff/"
    for token in ("", "forged", other_token):
        answer = advocate.post(url, data={"decision": "ADVOK", "comment": "c", "token": token},
                               allow_redirects=False, timeout=10)
        assert answer.status_code == 403, token
    # the API takes no cookie for changes: another site cannot use a logged-in browser
    api = advocate.post(f"{gracedb_service.url}superevents/{world['hidden']}/signoffs/",
                        data={"signoff_type": "ADV", "status": "OK"}, timeout=10)
    assert api.status_code == 401
    labels = gracedb_service.client().superevent(world["hidden"]).json()["labels"]
    assert "ADVOK" not in labels and "ADVNO" not in labels

    page = advocate.get(f"{home}superevents/{world['hidden']}/view/", timeout=10).text
    answer = advocate.post(url, data={"decision": "ADVNO", "comment": "glitch in L1",
                                      "token": form_token(page, "signoff-form")},
                           allow_redirects=False, timeout=10)
    assert answer.status_code == 303
    labels = gracedb_service.client().superevent(world["hidden"]).json()["labels"]
    assert "ADVNO" in labels and "ADVREQ" not in labels
    after = advocate.get(f"{home}superevents/{world['hidden']}/view/", timeout=10).text
    assert "glitch in L1" in after and 'id="signoff-form"' not in after


def test_login_refuses_wrong_passwords_foreign_forms_and_foreign_redirects(gracedb_service, world):
    home = home_url(gracedb_service)
    name, password = world["member"]
    session = requests.Session()
    nonce = re.search(r'name="nonce" value="([^"]+)"',
                      session.get(f"{home}login/", timeout=10).text).group(1)
    wrong = session.post(f"{home}login/", data={"nonce": nonce, "username": name,
                                                "password": "wrong"}, timeout=10)
    assert wrong.status_code == 401 and "gracedb_session" not in session.cookies
    foreign = requests.post(f"{home}login/", data={"nonce": "made-up", "username": name,
                                                   "password": password}, timeout=10)
    assert foreign.status_code == 400 and "gracedb_session" not in foreign.cookies
    nonce = re.search(r'name="nonce" value="([^"]+)"', wrong.text).group(1)
    answer = session.post(f"{home}login/", data={"nonce": nonce, "username": name,
                                                 "password": password, "next": "//evil.example/"},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    assert "HttpOnly" in answer.headers["set-cookie"]


def test_the_event_page_url_of_a_voevent_resolves(gracedb_service, world):
    client = gracedb_service.client()
    voevent = client.voevents(world["public"]).json()["voevents"][0]
    xml = client.files(world["public"], voevent["filename"]).read()
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    page_url = etree.fromstring(xml, parser).find(".//Param[@name='EventPage']").get("value")
    assert page_url == f"{home_url(gracedb_service)}superevents/{world['public']}/view/"
    page = requests.get(page_url, timeout=10)
    assert page.status_code == 200 and world["public"] in page.text
    assert voevent["ivorn"] in page.text


def test_api_docs_and_openapi_document_are_served_without_a_cdn(gracedb_service):
    home = home_url(gracedb_service)
    docs = requests.get(f"{home}api/docs", timeout=10)
    assert docs.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and all(a.startswith("/api/docs/static/") for a in assets), assets
    for asset in assets:
        assert requests.get(home + asset.lstrip("/"), timeout=10).status_code == 200
    spec = requests.get(f"{home}api/openapi.json", timeout=10).json()
    assert "/api/superevents/{superevent_id}/labels/" in spec["paths"]
    assert not any("/view/" in path for path in spec["paths"])  # pages are not API


# starlette's TestClient still runs on httpx here and says so
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_pages_show_a_bounded_number_of_log_messages(base_settings, tmp_path, monkeypatch):
    """In-process app with a page size of 3: the newest 3 messages, and a note of the rest."""
    import dataclasses

    from fastapi.testclient import TestClient

    from gw_ops.local_gracedb import auth
    from gw_ops.local_gracedb.app import create_app
    from gw_ops.local_gracedb.pages import data
    from tests.pages_world import coinc_at

    monkeypatch.setattr(data, "LOG_PAGE", 3)
    settings = dataclasses.replace(base_settings, state_dir=tmp_path, gracedb_url="",
                                   gracedb_files_dir="", gracedb_db_url="")
    credentials = auth.ensure_service_credentials(settings)
    with TestClient(create_app(settings)) as client:
        graceid = client.post("/api/events/", auth=credentials,
                              data={"group": "CBC", "pipeline": "gstlal", "search": "AllSky"},
                              files={"eventFile": ("coinc.xml", coinc_at(T0 + 500))}
                              ).json()["graceid"]
        for number in range(5):
            assert client.post(f"/api/events/{graceid}/log/", auth=credentials,
                               data={"comment": f"note number {number}"}).status_code == 201
        page = client.get(f"/events/{graceid}/view/", auth=credentials).text
    assert "The newest 3 of 6 messages" in page
    assert [n for n in range(5) if f"note number {n}" in page] == [2, 3, 4]


def test_notices_the_alert_sender_recorded_as_log_files_are_listed_as_alerts_sent(gracedb_service, world):
    """gw-ops' sender uploads the VOEvent it built as ``<id>-<serial>-<Type>.xml`` (no
    createVOEvent): the page lists it under "Alerts sent", for the public only when the
    message is public."""
    client, sid = gracedb_service.client(), world["public"]
    public_notice = voevent_filename(sid, 2, "Initial")
    internal_notice = voevent_filename(sid, 3, "Retraction")
    client.write_log(sid, "Sent Initial GCN notice", filename=public_notice, filecontents=b"<xml/>",
                     tag_name=["public", "em_follow"])
    client.write_log(sid, "not yet public", filename=internal_notice, filecontents=b"<xml/>")
    user, password = world["member"]
    member_page = logged_in_session(gracedb_service, user, password).get(
        f"{home_url(gracedb_service)}superevents/{sid}/view/", timeout=10).text
    anonymous_page = requests.get(f"{home_url(gracedb_service)}superevents/{sid}/view/", timeout=10).text
    alerts_of = lambda html: html.split("Alerts sent", 1)[1].split("</section>", 1)[0]  # noqa: E731
    for html in (member_page, anonymous_page):
        assert ivorn(sid, 2, "Initial") in alerts_of(html)
        assert ivorn(sid, 1, "Preliminary") in alerts_of(html)  # the createVOEvent one
    assert ivorn(sid, 3, "Retraction") in alerts_of(member_page)
    assert ivorn(sid, 3, "Retraction") not in anonymous_page
