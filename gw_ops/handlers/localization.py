"""The openmp localization lane and the annotations of G events (the I/O side).

BAYESTAR sky map, p_astro and em_bright of each superevent's preferred G event
(:func:`localize_preferred`), and the 3D volume rendering of a superevent's sky map once
its first alert is out (:func:`plot_volume_after_alert`).  Both run in the ``openmp``
pool; the lane handlers that carry them are registered in
:mod:`gw_ops.handlers.orchestrator` so that their DAG ids
(``lvalert_orchestrator_localize_preferred``...) and Redis consumer groups stay.

Measured here: one BAYESTAR run takes 23-90 s, a volume rendering about 10 minutes on 2
cores, so only the event that counts is localized and the volume plot comes last.
Heavy science modules are imported inside the functions (the DAG processor imports this
module).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from gw_ops import gracedb_client as gateway
from gw_ops.config import Settings, get_settings
from gw_ops.vocabulary import (
    EMBRIGHT_FILENAME,
    EMBRIGHT_IMAGE_FILENAME,
    EMBRIGHT_READY,
    GCN_PRELIM_SENT,
    IMAGE_FILENAMES,
    PASTRO_FILENAME,
    PASTRO_IMAGE_FILENAME,
    PASTRO_READY,
    SKYMAP_FILENAME,
    SKYMAP_IMAGE_FILENAME,
    SKYMAP_READY,
    SUPEREVENT_NODES,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Files of a G event that BAYESTAR needs; their upload brings an event back here.
LOCALIZATION_INPUTS = ("coinc.xml", "psd.xml.gz")
#: Volume rendering of a superevent's sky map.
VOLUME_FILENAME = "bayestar.volume.png"


def _upload(client: Any, object_id: str, comment: str, filename: str, contents: bytes,
            tag: str) -> None:
    """One tagged file upload (a write: tried once, see :func:`gw_ops.gracedb_client.write`)."""
    gateway.write(client.write_log, object_id, comment, filename=filename, filecontents=contents,
                  tag_name=[tag])


def _upload_classification_plots(client: Any, graceid: str, files: set[str],
                                 products: dict[str, Any]) -> list[str]:
    """Upload ``p_astro.png`` and ``em_bright.png`` of an event that has the JSON files.

    Charts already on the event are not made again (a redelivery uploads nothing).

    Returns
    -------
    list of str
        Names of the files uploaded now.
    """
    wanted = {PASTRO_IMAGE_FILENAME, EMBRIGHT_IMAGE_FILENAME} - set(files)
    if not wanted:
        return []
    if "classification_plots" not in products:
        from gw_ops.science.classification_plots import classification_plots
        products["classification_plots"] = classification_plots
    probabilities = json.loads(gateway.read_file(client, graceid, PASTRO_FILENAME))
    properties = json.loads(gateway.read_file(client, graceid, EMBRIGHT_FILENAME))
    charts = products["classification_plots"](probabilities, properties)
    uploaded = []
    for name, comment, tag in ((PASTRO_IMAGE_FILENAME, "Source classification chart", "p_astro"),
                               (EMBRIGHT_IMAGE_FILENAME, "Source properties chart", "em_bright")):
        if name in wanted:
            _upload(client, graceid, comment, name, charts[name], tag)
            uploaded.append(name)
    return uploaded


def handle_cbc_event(message: Mapping[str, Any], *, settings: Settings | None = None,
                     client=None, redis_client=None,
                     products: Mapping[str, Callable] | None = None) -> list[str]:
    """Localize and classify one CBC G event (skeleton for the lead's openmp lane).

    Runs on ``new`` events and on the upload of ``coinc.xml``/``psd.xml.gz``; does each
    product only once (skips files already on the event): ``p_astro.json`` +
    ``PASTRO_READY``, ``em_bright.json`` + ``EMBRIGHT_READY``, the BAYESTAR sky map
    (``bayestar.multiorder.fits`` + ``SKYMAP_READY``), then ``bayestar.png`` and the
    flattened ``bayestar.fits.gz``, all tagged.  A Redis lock per event
    keeps two concurrent deliveries from localizing the same event twice.

    Parameters
    ----------
    message : dict
        LVAlert message of a ``cbc_*`` node.
    products : mapping, optional
        Replacement functions ``localize``, ``plot_allsky``, ``flatten``, ``p_astro``, ``em_bright``
        (tests); by default :mod:`gw_ops.science.bayestar`, :mod:`gw_ops.science.skymap_products` and
        :mod:`gw_ops.science.classification`, imported here, not at module level.

    Returns
    -------
    list of str
        Files uploaded.
    """
    settings = settings or get_settings()
    graceid = message.get("uid")
    kind = message.get("alert_type")
    filename = (message.get("data") or {}).get("filename")
    superevent_id = message.get("superevent") if message.get("superevent") != "?" else None
    if not graceid or not (kind == "new" or (kind == "log" and filename in LOCALIZATION_INPUTS)):
        return []
    client = client or gateway.pipeline_client(settings)
    if redis_client is None:
        from gw_ops.transport.redis_client import get_redis
        redis_client = get_redis(settings)
    products = dict(products or {})
    files = gateway.file_names(client, graceid)
    if not set(LOCALIZATION_INPUTS) <= files:
        return []  # the upload of the missing file brings us back
    lock = settings.key("localizing", graceid)
    if not redis_client.set(lock, "1", nx=True, ex=int(settings.localization_lock_ttl_s)):
        return []  # another worker is on it; its redelivery covers a crash after the TTL
    uploaded = []
    try:
        # BAYESTAR (the long part) starts first, in a thread of its own: its C code releases
        # the GIL, so the classifications and their uploads run meanwhile (0.4 s that no
        # longer comes before it).  Only this thread uses the GraceDB client.  The sky map's
        # label comes last: the event is complete (and the alert can go) the moment its sky
        # map is ready; the plots follow the label so they never delay it.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bayestar") as pool:
            localization = None
            if SKYMAP_FILENAME not in files:
                if "localize" not in products:
                    from gw_ops.science.bayestar import import_localization_modules, localize, settings_kwargs
                    # before the thread starts: it and this thread must not both import
                    # astropy for the first time (a fresh Celery worker's first event)
                    import_localization_modules()
                    options = settings_kwargs(settings)

                    def localize_with_settings(coinc, psd, omp_threads):
                        return localize(coinc, psd, **{**options, "omp_threads": omp_threads})
                    products["localize"] = localize_with_settings
                log.info("BAYESTAR: localizing %s (superevent %s); settings: %s", graceid,
                         superevent_id or "not yet chosen",
                         ", ".join(f"{k}={v}" for k, v in bayestar_settings(settings).items()))
                localization = pool.submit(_timed_localization, products["localize"], graceid,
                                           gateway.read_file(client, graceid, "coinc.xml"),
                                           gateway.read_file(client, graceid, "psd.xml.gz"),
                                           settings.omp_threads_effective)
            uploaded += _classify(client, graceid, files, products)
            fits, wall_s = localization.result() if localization is not None else (None, None)
        if fits is not None:
            _upload(client, graceid, "BAYESTAR sky map", SKYMAP_FILENAME, fits, "sky_loc")
            uploaded.append(SKYMAP_FILENAME)
            gateway.ensure_label(client, graceid, SKYMAP_READY)
            record = {"graceid": graceid, "superevent_id": superevent_id,
                      "settings": bayestar_settings(settings), "wall_s": wall_s,
                      "localized_at": time.time(), "files": list(uploaded)}
            record_localization(redis_client, settings, record)
        # What comes after the sky map's label is for people reading GraceDB: no alert
        # waits for it, so it yields the CPU to the alert's own tasks running right now.
        uploaded += at_low_cpu_priority(
            lambda: _after_sky_map(client, graceid, files, fits, products, settings),
            settings.sky_map_products_niceness)
        if fits is not None:  # the record names every file of this localization
            record_localization(redis_client, settings, {**record, "files": list(uploaded)})
    finally:
        redis_client.delete(lock)
    return uploaded


def _timed_localization(localize: Callable, graceid: str, coinc: bytes, psd: bytes,
                        omp_threads: int) -> tuple[bytes, float]:
    """Run ``localize`` and log its wall time (s): the figure an operator compares with the
    alert's latency in the task log.  Returns the sky map and the wall time (s)."""
    started = time.monotonic()
    fits = localize(coinc, psd, omp_threads=omp_threads)
    wall_s = time.monotonic() - started
    log.info("BAYESTAR: %s localized in %.1f s wall time", graceid, wall_s)
    return fits, wall_s


def bayestar_settings(settings: Settings) -> dict[str, Any]:
    """The BAYESTAR settings a localization runs with (for its log and its record)."""
    return {"fast": settings.bayestar_fast,
            "fast_sample_rate_hz": settings.bayestar_fast_sample_rate_hz,
            "waveform": settings.bayestar_waveform, "f_low_hz": settings.bayestar_f_low_hz,
            "omp_threads": settings.omp_threads_effective}


#: Seconds a localization record is kept (a superevent run reads it within the hour).
LOCALIZATION_RECORD_TTL_S = 7 * 86400


def localization_record_key(settings: Settings, graceid: str) -> str:
    """Redis key of the record of a G event's BAYESTAR localization (JSON)."""
    return settings.key("localization", graceid)


def localized_event_key(settings: Settings, superevent_id: str) -> str:
    """Redis key naming the G event last localized for a superevent."""
    return settings.key("localization", "superevent", superevent_id)


def record_localization(redis_client, settings: Settings, record: Mapping[str, Any]) -> None:
    """Record a localization for the superevent run's ``localize`` task: which event, for
    which superevent, BAYESTAR's settings, its wall time (s), the files uploaded."""
    with redis_client.pipeline() as pipe:
        pipe.set(localization_record_key(settings, record["graceid"]), json.dumps(record),
                 ex=LOCALIZATION_RECORD_TTL_S)
        if record.get("superevent_id"):
            pipe.set(localized_event_key(settings, record["superevent_id"]), record["graceid"],
                     ex=LOCALIZATION_RECORD_TTL_S)
        pipe.execute()


def _classify(client, graceid: str, files: set[str], products: dict[str, Any]) -> list[str]:
    """p_astro and em_bright of one event, each uploaded with its label unless already there;
    returns the names uploaded."""
    uploaded = []
    event = None
    if PASTRO_FILENAME not in files:
        event = gateway.event(client, graceid)
        if "p_astro" not in products:
            from gw_ops.science.classification import p_astro
            products["p_astro"] = p_astro
        probabilities = products["p_astro"](event)
        _upload(client, graceid, "Source classification", PASTRO_FILENAME,
                json.dumps(probabilities).encode(), "p_astro")
        uploaded.append(PASTRO_FILENAME)
        gateway.ensure_label(client, graceid, PASTRO_READY)
    if EMBRIGHT_FILENAME not in files:
        event = event or gateway.event(client, graceid)
        template = ((event.get("extra_attributes") or {}).get("SingleInspiral") or [{}])[0]
        if "em_bright" not in products:
            from gw_ops.science.classification import em_bright
            products["em_bright"] = em_bright
        properties = products["em_bright"](template.get("mass1"), template.get("mass2"),
                                           template.get("spin1z", 0.0),
                                           template.get("spin2z", 0.0))
        _upload(client, graceid, "Source properties", EMBRIGHT_FILENAME,
                json.dumps(properties).encode(), "em_bright")
        uploaded.append(EMBRIGHT_FILENAME)
        gateway.ensure_label(client, graceid, EMBRIGHT_READY)
    return uploaded


def _after_sky_map(client, graceid: str, files: set[str], fits: bytes | None,
                   products: dict[str, Any], settings: Settings) -> list[str]:
    """The sky map's plot and flattened copy (when it was made now) and the classification
    charts of one event; returns the names uploaded."""
    uploaded = []
    if fits is not None:
        if "plot_allsky" not in products:
            from gw_ops.science.skymap_products import plot_allsky
            products["plot_allsky"] = plot_allsky
        _upload(client, graceid, "Mollweide projection of the sky map", SKYMAP_IMAGE_FILENAME,
                products["plot_allsky"](fits), "sky_loc")
        uploaded.append(SKYMAP_IMAGE_FILENAME)
        if "flatten" not in products:
            from gw_ops.science.skymap_products import flatten
            products["flatten"] = lambda data: flatten(data, settings.skymap_flatten_nside)
        _upload(client, graceid, "Flattened (HEALPix) sky map", "bayestar.fits.gz",
                products["flatten"](fits), "sky_loc")
        uploaded.append("bayestar.fits.gz")
    uploaded += _upload_classification_plots(client, graceid, files, products)
    if uploaded:
        _images_to_alerted_superevent(client, graceid)
    return uploaded


def _images_to_alerted_superevent(client, graceid: str) -> list[str]:
    """Copy the event's images to its superevent when the Preliminary already went out.

    The alert sender copies them right after the alert (:func:`gw_ops.handlers.alert_sender.
    copy_preferred_event_products`); the images of an event whose alert went out before
    they were made (they are made at low priority) are copied here instead.  Only for the
    superevent's preferred event; a copy already there is not uploaded again.

    Returns
    -------
    list of str
        Names of the files copied now.
    """
    from gw_ops.handlers.alert_sender import copy_preferred_event_products

    superevent_id = gateway.event(client, graceid).get("superevent")
    if not superevent_id or GCN_PRELIM_SENT not in gateway.labels(client, superevent_id):
        return []  # no alert yet: the alert sender copies them after it
    superevent = gateway.superevent(client, superevent_id)
    if superevent.get("preferred_event") != graceid:
        return []
    return copy_preferred_event_products(client, superevent, IMAGE_FILENAMES)


def at_low_cpu_priority(work: Callable[[], T], niceness: int) -> T:
    """Run ``work()`` in a thread of its own whose CPU niceness is raised by ``niceness``.

    On Linux the nice value belongs to a thread, and threads it starts inherit it, so the
    rest of the process (the lane's next localization) keeps its priority.  Elsewhere, or
    with ``niceness`` 0, ``work`` runs at the normal priority.

    Parameters
    ----------
    work : callable
        Called without arguments; its result is returned, its exception raised here.
    niceness : int
        Added to the thread's nice value (0-19; higher yields more).

    Returns
    -------
    What ``work`` returned.
    """
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return work()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            thread_id = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, thread_id,
                           min(19, os.getpriority(os.PRIO_PROCESS, thread_id) + niceness))
            outcome["result"] = work()
        except BaseException as exc:  # noqa: BLE001 (handed to the caller's thread)
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="low-priority-products")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]



def event_to_localize(message: Mapping[str, Any], client) -> str | None:
    """Which G event a message asks to localize now, or None to skip it.

    Only the event that counts is localized: a superevent's preferred event (on its
    creation or when the preferred event changes), or a G event not (yet) in any
    superevent.  A G event that is in a superevent but not preferred there is skipped:
    on this hardware one BAYESTAR run takes 23-90 s, so 16 uploads of one candidate
    must not queue ten minutes of work ahead of the one that counts.  If it becomes
    preferred later, the superevent's ``update`` message brings it back here.
    """
    kind = message.get("alert_type")
    if message.get("node") in SUPEREVENT_NODES:
        if kind not in ("new", "update"):
            return None
        return (message.get("object") or {}).get("preferred_event") or None
    data = message.get("data") or {}
    if not (kind == "new" or (kind == "log" and data.get("filename") in LOCALIZATION_INPUTS)):
        return None
    graceid = message.get("uid")
    superevent_id = (message.get("object") or {}).get("superevent")
    if superevent_id is None:
        superevent_id = gateway.event(client, graceid).get("superevent")
    if superevent_id:
        preferred = gateway.superevent(client, superevent_id).get("preferred_event")
        if preferred and preferred != graceid:
            log.info("not localizing %s: %s prefers %s", graceid, superevent_id, preferred)
            return None
    return graceid


def localize_preferred(message: Mapping[str, Any], *, settings: Settings | None = None,
                       client=None) -> list[str]:
    """BAYESTAR sky map, p_astro and em_bright of each superevent's preferred G event.

    Runs in the ``openmp`` pool (queue ``openmp`` on the Celery stack) with
    ``omp_threads`` OpenMP threads, through the lane handler
    :func:`gw_ops.handlers.orchestrator.localize_preferred`.  See :func:`event_to_localize` for which events are
    localized and :func:`handle_cbc_event` for the products (each made once).

    Returns
    -------
    list of str
        Files uploaded.
    """
    settings = settings or get_settings()
    client = client or gateway.pipeline_client(settings)
    graceid = event_to_localize(message, client)
    if graceid is None:
        return []
    superevent_id = (message.get("uid") if message.get("node") in SUPEREVENT_NODES
                     else (message.get("object") or {}).get("superevent"))
    return handle_cbc_event({"uid": graceid, "alert_type": "new", "data": {},
                             "superevent": superevent_id or "?"},
                            settings=settings, client=client)


def plot_volume_after_alert(message: Mapping[str, Any], *, settings: Settings | None = None,
                            client=None) -> str | None:
    """3D volume rendering of a superevent's sky map, once its first alert is out.

    About 10 minutes on 2 cores here, so it runs last: lowest priority in the ``openmp``
    pool, only after ``GCN_PRELIM_SENT``, and not at all when the setting
    ``plot_volume`` is off (the default of the ``local`` preset).
    """
    settings = settings or get_settings()
    data = message.get("data") or {}
    if not settings.plot_volume or message.get("alert_type") != "label_added" or \
            data.get("name") != GCN_PRELIM_SENT:
        return None
    superevent_id = message["uid"]
    client = client or gateway.pipeline_client(settings)
    if VOLUME_FILENAME in gateway.file_names(client, superevent_id):
        return None
    if SKYMAP_FILENAME not in gateway.file_names(client, superevent_id):
        return None
    from gw_ops.science.skymap_products import plot_volume
    png = plot_volume(gateway.read_file(client, superevent_id, SKYMAP_FILENAME),
                      omp_threads=settings.omp_threads_effective)
    _upload(client, superevent_id, "Volume rendering of the sky map", VOLUME_FILENAME, png,
            "sky_loc")
    return VOLUME_FILENAME
