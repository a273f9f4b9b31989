"""What the GraceDB page tests build through the stock client: events, superevents with
labels, a sky-map PNG in the log, a VOEvent; accounts; a logged-in ``requests`` session."""
from __future__ import annotations

import io
import re

import requests

from gw_ops.local_gracedb import auth
from tests.fixtures.gracedb import DATA

COINC = (DATA / "coinc_G211117.xml").read_bytes()
#: Size (pixels) of the sky-map PNG the tests upload.
PNG_WIDTH, PNG_HEIGHT = 320, 200


def coinc_at(gpstime: float) -> bytes:
    """The test coinc with its end time moved to ``gpstime`` (s)."""
    return COINC.replace(b"1135136350,", f"{int(gpstime)},".encode())


def sky_map_png() -> bytes:
    """A real PNG (matplotlib, Mollweide axes with a blob of points), PNG_WIDTH x PNG_HEIGHT."""
    import matplotlib
    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure
    figure = Figure(figsize=(PNG_WIDTH / 100, PNG_HEIGHT / 100), dpi=100)
    axes = figure.add_subplot(projection="mollweide")
    rng = np.random.default_rng(7)
    axes.scatter(rng.normal(0.8, 0.25, 500), rng.normal(0.3, 0.15, 500), s=1, color="tab:red")
    axes.grid(True)
    axes.set_xticklabels([])
    axes.set_yticklabels([])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def make_superevent(service, t0: float, *, labels=(), png: bytes | None = None,
                    voevent: bool = False, expose: bool = False, comment: str | None = None):
    """A G event and its superevent at ``t0`` (GPS s); returns ``(superevent_id, graceid)``."""
    client = service.client()
    graceid = client.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                  filecontents=coinc_at(t0)).json()["graceid"]
    sid = client.create_superevent(t0 - 1, t0, t0 + 1, graceid).json()["superevent_id"]
    for name in labels:
        client.write_label(sid, name)
    if png is not None:
        client.write_log(sid, "Sky map of the preferred event", filename="bayestar.png",
                         filecontents=png, tag_name=["sky_loc", "public"])
    if comment is not None:
        client.write_log(sid, comment)
    if voevent:
        client.write_log(sid, "sky map", filename="bayestar.multiorder.fits", filecontents=b"SIMPLE",
                         tag_name=["sky_loc", "public"])
        client.create_voevent(sid, "preliminary", skymap_type="bayestar",
                              skymap_filename="bayestar.multiorder.fits")
    if expose:
        client.modify_permissions(sid, "expose")
    return sid, graceid


def new_account(service, name: str, roles=()) -> tuple[str, str]:
    """``(name, password)`` of a new account of the service."""
    return name, auth.add_user(service.settings, name, roles)


def home_url(service) -> str:
    """The service's home page (``http://host:port/``)."""
    return service.url.removesuffix("api/")


def logged_in_session(service, name: str, password: str) -> requests.Session:
    """A ``requests`` session that logged in through the login form."""
    session = requests.Session()
    form = session.get(home_url(service) + "login/", timeout=10)
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)
    answer = session.post(home_url(service) + "login/", data={
        "nonce": nonce, "username": name, "password": password, "next": "/"},
        allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text
    return session


def form_token(html: str, form_id: str) -> str:
    """The hidden ``token`` of the form ``form_id`` in a page."""
    form = re.search(rf'<form[^>]*id="{form_id}".*?</form>', html, re.S).group(0)
    return re.search(r'name="token" value="([^"]+)"', form).group(1)
