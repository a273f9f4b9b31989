"""The per-superevent alert state machine: which label sends which public alert.

Decisions are pure functions of the superevent's labels and of the alerts already sent
(:func:`decide_on_label`, :func:`decide_on_file`, :func:`decide_second_preliminary`,
:func:`next_serial_number`, :func:`localization_order`); the thin I/O around them talks
to GraceDB and Redis (:func:`send_alert`, :func:`handle_superevent`,
:func:`second_preliminary`, :func:`handle_cbc_event`).

State machine (label added to a superevent -> alert):

============================  ================================================
``EARLY_WARNING``             EarlyWarning (once; not after a Preliminary)
``SIGNIF_LOCKED``,            Preliminary #1 (once); copies the preferred event's
``LOW_SIGNIF_LOCKED``         sky map and classification files first; labels
                              ``GCN_PRELIM_SENT``
(after the clean-up timeout)  Preliminary #2 for significant candidates, with the
                              re-selected preferred event (:func:`second_preliminary`)
``ADVOK``                     Initial (once)
``ADVNO``                     Retraction (once; only after an earlier public alert)
new sky map / p_astro /       Update, once per uploaded file version, only after
em_bright file after Initial  the Initial alert and never after a Retraction
============================  ================================================

No alert follows a Retraction; ``DQV`` (data-quality veto) blocks every alert except the
Retraction.

Idempotency and races (delivery is at-least-once)
-------------------------------------------------
Each alert has a *key* (``Preliminary-1``, ``Initial``, ``Update:<file>,<version>``...).
The alerts already sent are the union of two records:

* GraceDB, durable: every sent VOEvent is uploaded with a log comment naming its key;
* Redis, the race guard: one Lua script atomically checks that neither the key nor the
  serial number is taken, appends the VOEvent to the outgoing stream and records
  key, serial number and XML in the hash ``P alerts:<superevent_id>``.  Two concurrent
  deliveries of the same label therefore append one VOEvent; a worker that crashed after
  the append but before the GraceDB upload is completed by the redelivery (the XML is
  taken from the Redis record, not rebuilt).

This module is imported by the DAG processor: only light imports at module level.
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from gw_ops.config import Settings, get_settings
from gw_ops.formats import alerts
from gw_ops.transport import lvalert

log = logging.getLogger(__name__)

# --- labels ---------------------------------------------------------------------------
EARLY_WARNING_LABEL = "EARLY_WARNING"
SIGNIF_LOCKED = "SIGNIF_LOCKED"
LOW_SIGNIF_LOCKED = "LOW_SIGNIF_LOCKED"
ADVOK = "ADVOK"
ADVNO = "ADVNO"
DQV = "DQV"
GCN_PRELIM_SENT = "GCN_PRELIM_SENT"
SKYMAP_READY = "SKYMAP_READY"
PASTRO_READY = "PASTRO_READY"
EMBRIGHT_READY = "EMBRIGHT_READY"

#: Files of the preferred event copied to the superevent before a Preliminary alert.
SKYMAP_FILENAME = "bayestar.multiorder.fits"
PASTRO_FILENAME = "p_astro.json"
EMBRIGHT_FILENAME = "em_bright.json"
PRODUCT_FILENAMES = (SKYMAP_FILENAME, PASTRO_FILENAME, EMBRIGHT_FILENAME)

#: LVAlert nodes of G events whose localization :func:`handle_cbc_event` does.
CBC_NODES = ("cbc_gstlal", "cbc_pycbc", "cbc_mbta", "cbc_spiir")

#: Maximum tries to win a serial number against concurrent senders.
_SERIAL_TRIES = 5


# --- pure decisions -------------------------------------------------------------------


@dataclass(frozen=True)
class AlertDecision:
    """An alert to send.

    Attributes
    ----------
    alert_type : str
        One of :data:`gw_ops.formats.alerts.ALERT_TYPES`.
    key : str
        Idempotency key: the same key is never sent twice for one superevent.
    reason : str
        Why (for logs).
    """

    alert_type: str
    key: str
    reason: str = ""


def preliminary_key(number: int) -> str:
    """Key of the ``number``-th Preliminary alert (1 or 2)."""
    return f"{alerts.PRELIMINARY}-{number}"


def update_key(filename: str, file_version: int | str | None) -> str:
    """Key of the Update alert triggered by one version of one file."""
    return f"{alerts.UPDATE}:{filename},{'' if file_version is None else file_version}"


def _has_public_alert(sent_keys: set[str]) -> bool:
    return bool(sent_keys - {alerts.RETRACTION})


def decide_on_label(label: str, labels: Iterable[str],
                    sent_keys: Iterable[str]) -> AlertDecision | None:
    """The alert a newly added label calls for, if any.

    Parameters
    ----------
    label : str
        The label just added.
    labels : iterable of str
        All labels of the superevent now (``label`` included or not).
    sent_keys : iterable of str
        Keys of the alerts already sent for the superevent.

    Returns
    -------
    AlertDecision or None
    """
    labels = set(labels) | {label}
    sent = set(sent_keys)
    if alerts.RETRACTION in sent:
        return None  # nothing follows a retraction
    if label == ADVNO:
        if not _has_public_alert(sent):
            return None  # nothing public to retract
        return AlertDecision(alerts.RETRACTION, alerts.RETRACTION, "ADVNO: vetted as not viable")
    if DQV in labels:
        return None
    if label == EARLY_WARNING_LABEL:
        if alerts.EARLY_WARNING in sent or any(k.startswith(alerts.PRELIMINARY) for k in sent):
            return None
        return AlertDecision(alerts.EARLY_WARNING, alerts.EARLY_WARNING,
                             "EARLY_WARNING label")
    if label in (SIGNIF_LOCKED, LOW_SIGNIF_LOCKED):
        if preliminary_key(1) in sent or alerts.INITIAL in sent:
            return None
        return AlertDecision(alerts.PRELIMINARY, preliminary_key(1), f"{label} label")
    if label == ADVOK:
        if alerts.INITIAL in sent:
            return None
        return AlertDecision(alerts.INITIAL, alerts.INITIAL, "ADVOK: vetted as viable")
    return None


def decide_second_preliminary(labels: Iterable[str],
                              sent_keys: Iterable[str]) -> AlertDecision | None:
    """Whether the second Preliminary alert (after the clean-up timeout) goes out.

    Only significant candidates (``SIGNIF_LOCKED``) get it, only after the first one,
    and not once the Initial alert or a Retraction was sent or a DQV label came.
    """
    labels, sent = set(labels), set(sent_keys)
    if (SIGNIF_LOCKED not in labels or DQV in labels or preliminary_key(1) not in sent
            or preliminary_key(2) in sent or alerts.INITIAL in sent
            or alerts.RETRACTION in sent):
        return None
    return AlertDecision(alerts.PRELIMINARY, preliminary_key(2),
                         "clean-up timeout: re-selected preferred event")


def is_update_trigger_file(filename: str | None) -> bool:
    """Whether a file uploaded to a superevent is a new sky map or classification."""
    if not filename:
        return False
    name = filename.split(",")[0]
    return (name.endswith(".multiorder.fits") or name.endswith(PASTRO_FILENAME)
            or name.endswith(EMBRIGHT_FILENAME))


def decide_on_file(filename: str | None, file_version: int | str | None, labels: Iterable[str],
                   sent_keys: Iterable[str]) -> AlertDecision | None:
    """The Update alert a file uploaded to the superevent calls for, if any.

    A new sky map or classification after the Initial alert gives one Update per file
    version; before the Initial alert the Initial will carry it anyway.
    """
    sent, labels = set(sent_keys), set(labels)
    if (not is_update_trigger_file(filename) or alerts.INITIAL not in sent
            or alerts.RETRACTION in sent or DQV in labels):
        return None
    key = update_key(filename, file_version)
    if key in sent:
        return None
    return AlertDecision(alerts.UPDATE, key, f"new file {filename}")


def is_significant(labels: Iterable[str]) -> bool:
    """Significance of the candidate from its lock labels (unlocked: significant)."""
    labels = set(labels)
    return not (LOW_SIGNIF_LOCKED in labels and SIGNIF_LOCKED not in labels)


def next_serial_number(taken: Iterable[int]) -> int:
    """The serial number (``Pkt_Ser_Num``) of the next notice: one above the highest."""
    return max(taken, default=0) + 1


_VOEVENT_FILE = re.compile(r"^(?P<sid>[A-Z]*S\d{6}[a-z]+)-(?P<serial>\d+)-(?P<type>[A-Za-z]+)"
                           r"\.xml$")
_KEY_IN_COMMENT = re.compile(r"\[alert key (?P<key>[^\]]+)\]")


def sent_alerts_from_logs(logs: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Alerts recorded in a superevent's GraceDB log: ``{key: serial number}``.

    A log entry counts when its file is a notice (``<sid>-<n>-<AlertType>.xml``); its
    key is read from the comment (``[alert key ...]``), or, for notices uploaded by
    something else, derived from the type (the n-th Preliminary is ``Preliminary-n``).
    """
    sent: dict[str, int] = {}
    preliminaries = 0
    for entry in logs:
        match = _VOEVENT_FILE.match((entry.get("filename") or "").split(",")[0])
        if not match or match["type"] not in alerts.ALERT_TYPES:
            continue
        serial = int(match["serial"])
        key_match = _KEY_IN_COMMENT.search(entry.get("comment") or "")
        if key_match:
            key = key_match["key"]
        elif match["type"] == alerts.PRELIMINARY:
            preliminaries += 1
            key = preliminary_key(preliminaries)
        elif match["type"] == alerts.UPDATE:
            key = f"{alerts.UPDATE}:serial-{serial}"
        else:
            key = match["type"]
        sent.setdefault(key, serial)
    return sent


def latest_files(logs: Sequence[Mapping[str, Any]]) -> dict[str, int | None]:
    """The newest version of each file named in a GraceDB log: ``{name: version}``."""
    files: dict[str, int | None] = {}
    for entry in logs:
        name = entry.get("filename")
        if name:
            files[name.split(",")[0]] = entry.get("file_version")
    return files


def newest_matching(logs: Sequence[Mapping[str, Any]], suffix: str) -> str | None:
    """Name of the file ending in ``suffix`` uploaded last, if any."""
    chosen = None
    for entry in logs:
        name = (entry.get("filename") or "").split(",")[0]
        if name.endswith(suffix):
            chosen = name
    return chosen


def _graceid(candidate: Any) -> str:
    if isinstance(candidate, str):
        return candidate
    return candidate.get("graceid") or candidate.get("uid") or ""


def _superevent_of(candidate: Any) -> str | None:
    if isinstance(candidate, str):
        return None
    obj = candidate.get("object") if isinstance(candidate.get("object"), Mapping) else candidate
    return obj.get("superevent")


def localization_order(candidates: Sequence[Any], preferred_by_superevent: Mapping[str, str],
                       *, skip_superseded: bool = False) -> list:
    """Order G events for localization so the ones that count come first.

    Parameters
    ----------
    candidates : sequence
        G events waiting for localization: graceid strings, event dicts (``graceid``,
        ``superevent``) or LVAlert messages (``uid``, ``object.superevent``), in arrival
        order.
    preferred_by_superevent : mapping of str to str
        Current preferred event of each superevent.
    skip_superseded : bool
        Drop events whose superevent prefers another event instead of moving them back.

    Returns
    -------
    list
        The candidates (each graceid once): first the current preferred events, then
        events not (yet) in a superevent, then events that are no longer preferred; the
        arrival order is kept within each group.
    """
    preferred_ids = set(preferred_by_superevent.values())
    groups: tuple[list, list, list] = ([], [], [])
    seen: set[str] = set()
    for candidate in candidates:
        graceid = _graceid(candidate)
        if graceid in seen:
            continue
        seen.add(graceid)
        superevent_id = _superevent_of(candidate)
        if graceid in preferred_ids:
            groups[0].append(candidate)
        elif superevent_id is None or superevent_id not in preferred_by_superevent:
            groups[1].append(candidate)
        elif not skip_superseded:
            groups[2].append(candidate)
    return groups[0] + groups[1] + groups[2]


def superevent_category(superevent_id: str) -> str:
    """``mdc`` for ``MS...``, ``test`` for ``TS...``, else ``production``."""
    return {"MS": "mdc", "TS": "test"}.get(superevent_id[:2], "production")


# --- GraceDB and Redis I/O ------------------------------------------------------------


def _gracedb(settings: Settings):
    from gw_ops.gracedb_client import gracedb_client
    return gracedb_client(settings)


def _redis(settings: Settings):
    from gw_ops.transport.redis_client import get_redis
    return get_redis(settings)


def _json(response) -> Any:
    return response.json()


def _read_file(client, object_id: str, filename: str) -> bytes:
    response = client.files(object_id, filename)
    return response.read() if hasattr(response, "read") else response.content


def _logs(client, object_id: str) -> list[dict]:
    body = _json(client.logs(object_id))
    return body.get("log", body) if isinstance(body, dict) else body


def _labels(client, object_id: str) -> set[str]:
    body = _json(client.labels(object_id))
    entries = body.get("labels", body) if isinstance(body, dict) else body
    return {e["name"] if isinstance(e, Mapping) else e for e in entries}


def _file_names(client, object_id: str) -> set[str]:
    return set(_json(client.files(object_id)))


def _ensure_label(client, object_id: str, label: str) -> None:
    """Add a label unless present (GraceDB refuses a duplicate)."""
    if label in _labels(client, object_id):
        return
    try:
        client.write_label(object_id, label)
    except Exception as exc:  # a concurrent worker may have added it in between
        if label not in _labels(client, object_id):
            raise exc


def alert_record_key(settings: Settings, superevent_id: str) -> str:
    """Redis hash recording the alerts appended for one superevent."""
    return settings.key("alerts", superevent_id)


#: Atomically: refuse a key already sent (returns {0, record}) or a serial number already
#: used (returns {-1}); otherwise append to the outgoing stream, record, return {1, id}.
_APPEND_ONCE = """
local existing = redis.call('HGET', KEYS[1], 'key:' .. ARGV[1])
if existing then return {0, existing} end
if redis.call('HEXISTS', KEYS[1], 'serial:' .. ARGV[2]) == 1 then return {-1, ''} end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'xml', ARGV[3],
                      'ivorn', ARGV[4])
redis.call('HSET', KEYS[1], 'key:' .. ARGV[1], ARGV[2] .. ' ' .. id, 'serial:' .. ARGV[2],
           ARGV[1], 'xml:' .. ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, id}
"""


def _redis_sent(redis_client, settings: Settings, superevent_id: str) -> dict[str, int]:
    """``{key: serial}`` of the alerts the Redis record says were appended."""
    raw = redis_client.hgetall(alert_record_key(settings, superevent_id))
    sent = {}
    for field_name, value in raw.items():
        field_name = field_name.decode()
        if field_name.startswith("key:"):
            sent[field_name[4:]] = int(value.decode().split()[0])
    return sent


def _outgoing_maxlen() -> int:
    try:
        from gw_ops.vtp.broker import OUTGOING_MAXLEN
        return int(OUTGOING_MAXLEN)
    except ImportError:  # the broker module is optional for this module's tests
        return 100_000


def _event_page(settings: Settings, superevent_id: str) -> str:
    base = settings.gracedb_api_url.rstrip("/")
    base = base[:-4] if base.endswith("/api") else base
    return f"{base}/superevents/{superevent_id}/view/"


def _file_url(settings: Settings, object_id: str, filename: str,
              version: int | None) -> str:
    suffix = "" if version is None else f",{version}"
    return f"{settings.gracedb_api_url}superevents/{object_id}/files/{filename}{suffix}"


def copy_preferred_event_products(client, superevent: Mapping[str, Any]) -> list[str]:
    """Copy the preferred event's sky map and classification files to the superevent.

    A file is uploaded only when the superevent lacks it or holds different bytes, so a
    redelivery uploads nothing and a changed preferred event uploads a new version.

    Returns
    -------
    list of str
        Names of the files uploaded now.
    """
    superevent_id = superevent["superevent_id"]
    preferred = superevent["preferred_event"]
    event_files = _file_names(client, preferred)
    superevent_files = _file_names(client, superevent_id)
    copied = []
    for name in PRODUCT_FILENAMES:
        if name not in event_files:
            continue
        contents = _read_file(client, preferred, name)
        if name in superevent_files and _read_file(client, superevent_id, name) == contents:
            continue
        client.write_log(superevent_id, f"Copied {name} from the preferred event {preferred}",
                         filename=name, filecontents=contents)
        copied.append(name)
    return copied


def _external_coinc(client, superevent: Mapping[str, Any]) -> alerts.ExternalCoinc | None:
    """The coincident external trigger of a superevent, when RAVEN recorded one."""
    external_id = superevent.get("em_type")
    if not external_id or superevent.get("time_coinc_far") is None:
        return None
    try:
        external = _json(client.event(external_id))
    except Exception:  # the coincidence is optional content; the alert must still go
        log.exception("could not read external event %s", external_id)
        return None
    grb = (external.get("extra_attributes") or {}).get("GRB") or {}
    return alerts.ExternalCoinc(
        gcn_notice_id=int(grb.get("trigger_id") or 0),
        ivorn=grb.get("ivorn") or "",
        observatory=external.get("pipeline") or "",
        search=external.get("search") or "",
        time_difference=float(external.get("gpstime", 0.0)) - float(superevent.get("t_0", 0.0)),
        time_coincidence_far=float(superevent["time_coinc_far"]),
        time_sky_position_coincidence_far=superevent.get("space_coinc_far"))


def gather_content(client, settings: Settings, superevent: Mapping[str, Any],
                   logs: Sequence[Mapping[str, Any]], labels: Iterable[str],
                   alert_type: str, serial_number: int,
                   cited_ivorns: Sequence[str] = ()) -> alerts.AlertContent:
    """Read what an alert says from GraceDB (superevent, preferred event, files)."""
    superevent_id = superevent["superevent_id"]
    event = superevent.get("preferred_event_data") or _json(
        client.event(superevent["preferred_event"]))
    versions = latest_files(logs)
    skymap_name = newest_matching(logs, ".multiorder.fits")
    skymap_bytes = _read_file(client, superevent_id, skymap_name) if skymap_name else None
    classification, properties = {}, {}
    pastro_name = newest_matching(logs, PASTRO_FILENAME)
    if pastro_name and event.get("group", "CBC") == "CBC":
        classification = json.loads(_read_file(client, superevent_id, pastro_name))
    embright_name = newest_matching(logs, EMBRIGHT_FILENAME)
    if embright_name and event.get("group", "CBC") == "CBC":
        em_bright = json.loads(_read_file(client, superevent_id, embright_name))
        properties = {k: em_bright[k] for k in alerts.PROPERTY_KEYS if k in em_bright}
    instruments = event.get("instruments") or ""
    if isinstance(instruments, str):
        instruments = tuple(i for i in instruments.split(",") if i)
    return alerts.AlertContent(
        superevent_id=superevent_id,
        alert_type=alert_type,
        serial_number=serial_number,
        time_created=alerts.utc_now_iso(),
        event_time_gps=float(superevent.get("t_0") or event.get("gpstime")),
        far=float(superevent.get("far") if superevent.get("far") is not None else event["far"]),
        significant=is_significant(labels),
        group=event.get("group") or "CBC",
        pipeline=event.get("pipeline") or "",
        search=event.get("search") or "",
        instruments=tuple(instruments),
        skymap_filename=skymap_name,
        skymap_url=(_file_url(settings, superevent_id, skymap_name, versions.get(skymap_name))
                    if skymap_name else None),
        skymap_bytes=skymap_bytes,
        classification=classification,
        properties=properties,
        external_coinc=_external_coinc(client, superevent),
        event_page=_event_page(settings, superevent_id),
        cited_ivorns=tuple(cited_ivorns),
    )


def _record_in_gracedb(client, superevent_id: str, decision: AlertDecision, serial: int,
                       xml: bytes, content: alerts.AlertContent | None) -> None:
    """Upload the sent VOEvent (with its key), the JSON alert and the Circular draft."""
    filename = alerts.voevent_filename(superevent_id, serial, decision.alert_type)
    client.write_log(superevent_id,
                     f"Sent {decision.alert_type} GCN notice "
                     f"{alerts.ivorn(superevent_id, serial, decision.alert_type)} "
                     f"[alert key {decision.key}]",
                     filename=filename, filecontents=xml)
    if content is None:
        return  # completing a crashed sender's record: the notice is what counts
    stem = filename[:-len(".xml")]
    alert_json = json.dumps(alerts.build_json_alert(content), separators=(",", ":"))
    client.write_log(superevent_id, f"JSON alert of {content.ivorn}",
                     filename=f"{stem}.json", filecontents=alert_json.encode())
    if decision.alert_type != alerts.EARLY_WARNING:
        client.write_log(superevent_id, f"GCN Circular draft for {content.ivorn}",
                         filename=f"{stem}.circular.txt",
                         filecontents=alerts.build_circular(content).encode())


def send_alert(decision: AlertDecision, superevent_id: str, *, settings: Settings | None = None,
               client=None, redis_client=None) -> dict[str, Any]:
    """Send one alert at most once: build, validate, append to the outgoing stream, record.

    Parameters
    ----------
    decision : AlertDecision
    superevent_id : str
    settings : Settings, optional
    client : ligo.gracedb.rest.GraceDb, optional
    redis_client : redis.Redis, optional

    Returns
    -------
    dict
        ``status`` (``sent``, ``already sent`` or ``completed``: appended earlier by a
        worker that did not finish recording it), ``key``, ``serial_number``, ``ivorn``.
    """
    settings = settings or get_settings()
    client = client or _gracedb(settings)
    redis_client = redis_client or _redis(settings)
    record_key = alert_record_key(settings, superevent_id)

    logs = _logs(client, superevent_id)
    in_gracedb = sent_alerts_from_logs(logs)
    if decision.key in in_gracedb:
        serial = in_gracedb[decision.key]
        _after_send(client, superevent_id, decision)
        return {"status": "already sent", "key": decision.key, "serial_number": serial,
                "ivorn": alerts.ivorn(superevent_id, serial, decision.alert_type)}

    if (decision.alert_type == alerts.PRELIMINARY
            and decision.key not in _redis_sent(redis_client, settings, superevent_id)):
        superevent = _json(client.superevent(superevent_id))
        if copy_preferred_event_products(client, superevent):
            logs = _logs(client, superevent_id)

    superevent = _json(client.superevent(superevent_id))
    labels = _labels(client, superevent_id)
    script = redis_client.register_script(_APPEND_ONCE)
    for _ in range(_SERIAL_TRIES):
        in_redis = _redis_sent(redis_client, settings, superevent_id)
        if decision.key in in_redis:
            break
        known = {**in_redis, **in_gracedb}
        serial = next_serial_number(known.values())
        cited = [alerts.ivorn(superevent_id, s, _type_of_key(k))
                 for k, s in sorted(known.items(), key=lambda item: item[1])]
        content = gather_content(client, settings, superevent, logs, labels,
                                 decision.alert_type, serial, cited)
        xml = alerts.build_voevent(content)
        alerts.validate_voevent(xml)
        status, detail = script(keys=[record_key, _outgoing_stream(settings)],
                                args=[decision.key, serial, xml, content.ivorn,
                                      int(settings.alert_record_ttl_s), _outgoing_maxlen()])
        if int(status) == 1:
            log.info("sent %s (%s)", content.ivorn, decision.reason)
            _record_in_gracedb(client, superevent_id, decision, serial, xml, content)
            _after_send(client, superevent_id, decision)
            return {"status": "sent", "key": decision.key, "serial_number": serial,
                    "ivorn": content.ivorn}
        if int(status) == 0:
            break
        # -1: a concurrent sender took this serial number; recount and try again
    else:
        raise RuntimeError(f"{superevent_id}: no free serial number after {_SERIAL_TRIES} tries")

    # Appended earlier (possibly by a worker that crashed before recording it in GraceDB).
    record = redis_client.hget(record_key, f"key:{decision.key}").decode()
    serial = int(record.split()[0])
    if decision.key not in sent_alerts_from_logs(_logs(client, superevent_id)):
        xml = redis_client.hget(record_key, f"xml:{decision.key}")
        _record_in_gracedb(client, superevent_id, decision, serial, xml, None)
        status = "completed"
    else:
        status = "already sent"
    _after_send(client, superevent_id, decision)
    return {"status": status, "key": decision.key, "serial_number": serial,
            "ivorn": alerts.ivorn(superevent_id, serial, decision.alert_type)}


def _type_of_key(key: str) -> str:
    for alert_type in alerts.ALERT_TYPES:
        if key.startswith(alert_type):
            return alert_type
    return key


def _outgoing_stream(settings: Settings) -> str:
    from gw_ops.transport.redis_client import voevent_outgoing_stream
    return voevent_outgoing_stream(settings)


def _after_send(client, superevent_id: str, decision: AlertDecision) -> None:
    """Labels that record a sent alert (idempotent)."""
    if decision.alert_type == alerts.PRELIMINARY:
        _ensure_label(client, superevent_id, GCN_PRELIM_SENT)


def _sent_keys(client, settings: Settings, redis_client, superevent_id: str) -> set[str]:
    return (set(sent_alerts_from_logs(_logs(client, superevent_id)))
            | set(_redis_sent(redis_client, settings, superevent_id)))


def complete_unrecorded_alerts(superevent_id: str, *, settings: Settings, client,
                               redis_client) -> list[dict[str, Any]]:
    """Finish alerts that were appended to the outgoing stream but never recorded in
    GraceDB (the sender died in between): upload the very VOEvent that was sent, add
    its labels.  Every handler call runs this first, so a redelivery repairs the record.
    """
    unrecorded = (set(_redis_sent(redis_client, settings, superevent_id))
                  - set(sent_alerts_from_logs(_logs(client, superevent_id))))
    return [send_alert(AlertDecision(_type_of_key(key), key, "complete the GraceDB record"),
                       superevent_id, settings=settings, client=client,
                       redis_client=redis_client)
            for key in sorted(unrecorded)]


# --- handlers -------------------------------------------------------------------------


@lvalert.handler("superevent", "mdc_superevent", "test_superevent", priority_weight=50)
def handle_superevent(message: Mapping[str, Any], *, settings: Settings | None = None,
                      client=None, redis_client=None) -> dict[str, Any] | None:
    """Send the alert a superevent's new label or new file calls for.

    Parameters
    ----------
    message : dict
        LVAlert message (``uid``, ``alert_type``, ``data``, ``object``, ``node``).
    settings, client, redis_client : optional
        Injected in tests; built from the settings otherwise.

    Returns
    -------
    dict or None
        What :func:`send_alert` returned, or None when no alert was due.
    """
    settings = settings or get_settings()
    superevent_id = message.get("uid") or (message.get("object") or {}).get("superevent_id")
    if not superevent_id or superevent_category(superevent_id) not in \
            settings.superevent_categories:
        return None
    kind = message.get("alert_type")
    data = message.get("data") or {}
    if kind not in ("label_added", "log"):
        return None
    if kind == "log" and not is_update_trigger_file(data.get("filename")):
        return None
    client = client or _gracedb(settings)
    redis_client = redis_client or _redis(settings)
    with superevent_lock(redis_client, settings, superevent_id):
        return _handle_superevent_locked(superevent_id, kind, data, settings=settings, client=client,
                                         redis_client=redis_client)


def superevent_lock(redis_client, settings: Settings, superevent_id: str):
    """Lock that serializes the orchestrator's work on one superevent across lane runs.

    Two runs of the orchestrator DAG may handle messages of the same superevent at once;
    alert sending is safe on its own (an atomic Redis script), but copying the preferred
    event's files and finishing the bookkeeping are not.  Held at most
    ``localization_lock_ttl_s`` (a dead holder cannot block forever).
    """
    return redis_client.lock(settings.key("orchestrator", "lock", superevent_id),
                             timeout=settings.localization_lock_ttl_s,
                             blocking_timeout=settings.localization_lock_ttl_s)


def _handle_superevent_locked(superevent_id: str, kind: str, data: Mapping[str, Any], *,
                              settings: Settings, client, redis_client) -> dict[str, Any] | None:
    completed = complete_unrecorded_alerts(superevent_id, settings=settings, client=client,
                                           redis_client=redis_client)
    labels = _labels(client, superevent_id)  # fresh: the message's copy may be stale
    sent = _sent_keys(client, settings, redis_client, superevent_id)
    if kind == "label_added":
        decision = decide_on_label(data.get("name", ""), labels, sent)
    else:
        decision = decide_on_file(data.get("filename"), data.get("file_version"), labels, sent)
    result = completed[-1] if completed else None
    if decision is not None:
        result = send_alert(decision, superevent_id, settings=settings, client=client,
                            redis_client=redis_client)
        sent = _sent_keys(client, settings, redis_client, superevent_id)
        labels = _labels(client, superevent_id)
    # every delivery finishes the bookkeeping of what was sent, so a redelivery after a
    # crash between sending and recording repairs it
    finish_bookkeeping(superevent_id, sent, labels, settings=settings, client=client,
                       redis_client=redis_client)
    return result


def finish_bookkeeping(superevent_id: str, sent: set[str], labels: set[str], *, settings: Settings,
                       client, redis_client) -> None:
    """Record the consequences of sent alerts (idempotent).

    ``GCN_PRELIM_SENT`` once a Preliminary is out, and the second Preliminary scheduled
    ``preliminary_cleanup_timeout_s`` after the first while it has not been sent (the
    schedule keeps the earliest due time, so redeliveries do not postpone it).
    """
    if any(key.startswith(alerts.PRELIMINARY) for key in sent) and GCN_PRELIM_SENT not in labels:
        _ensure_label(client, superevent_id, GCN_PRELIM_SENT)
    if decide_second_preliminary(labels, sent) is not None:
        from gw_ops.transport.delayed import schedule
        schedule(redis_client, settings, "second_preliminary", {"superevent_id": superevent_id},
                 time.time() + settings.preliminary_cleanup_timeout_s)


def second_preliminary(superevent_id: str, *, settings: Settings | None = None, client=None,
                       redis_client=None) -> dict[str, Any] | None:
    """Send the second Preliminary alert, due ``settings.preliminary_cleanup_timeout_s``
    after the first; the preferred event is re-read from GraceDB, and its files copied
    again when they changed.  Idempotent: the lead's DAG may call it more than once.

    Returns
    -------
    dict or None
        What :func:`send_alert` returned, or None when it is not due.
    """
    settings = settings or get_settings()
    client = client or _gracedb(settings)
    redis_client = redis_client or _redis(settings)
    with superevent_lock(redis_client, settings, superevent_id):
        complete_unrecorded_alerts(superevent_id, settings=settings, client=client,
                                   redis_client=redis_client)
        decision = decide_second_preliminary(_labels(client, superevent_id),
                                             _sent_keys(client, settings, redis_client,
                                                        superevent_id))
        if decision is None:
            return None
        return send_alert(decision, superevent_id, settings=settings, client=client,
                          redis_client=redis_client)


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
    if not graceid or not (kind == "new" or (kind == "log" and filename in
                                             ("coinc.xml", "psd.xml.gz"))):
        return []
    client = client or _gracedb(settings)
    redis_client = redis_client or _redis(settings)
    products = dict(products or {})
    files = _file_names(client, graceid)
    if "coinc.xml" not in files or "psd.xml.gz" not in files:
        return []  # the upload of the missing file brings us back
    lock = settings.key("localizing", graceid)
    if not redis_client.set(lock, "1", nx=True, ex=int(settings.localization_lock_ttl_s)):
        return []  # another worker is on it; its redelivery covers a crash after the TTL
    uploaded = []
    try:
        # The cheap classifications first and the sky map's label last: the event is
        # complete (and the alert can go) the moment its sky map is ready; the plots
        # follow the label so they never delay it.
        event = None
        if PASTRO_FILENAME not in files:
            event = _json(client.event(graceid))
            if "p_astro" not in products:
                from gw_ops.science.classification import p_astro
                products["p_astro"] = p_astro
            probabilities = products["p_astro"](event)
            client.write_log(graceid, "Source classification", filename=PASTRO_FILENAME,
                             filecontents=json.dumps(probabilities).encode(), tag_name=["p_astro"])
            uploaded.append(PASTRO_FILENAME)
            _ensure_label(client, graceid, PASTRO_READY)
        if EMBRIGHT_FILENAME not in files:
            event = event or _json(client.event(graceid))
            template = ((event.get("extra_attributes") or {}).get("SingleInspiral") or [{}])[0]
            if "em_bright" not in products:
                from gw_ops.science.classification import em_bright
                products["em_bright"] = em_bright
            properties = products["em_bright"](template.get("mass1"), template.get("mass2"),
                                               template.get("spin1z", 0.0),
                                               template.get("spin2z", 0.0))
            client.write_log(graceid, "Source properties", filename=EMBRIGHT_FILENAME,
                             filecontents=json.dumps(properties).encode(), tag_name=["em_bright"])
            uploaded.append(EMBRIGHT_FILENAME)
            _ensure_label(client, graceid, EMBRIGHT_READY)
        if SKYMAP_FILENAME not in files:
            if "localize" not in products:
                from gw_ops.science.bayestar import localize, settings_kwargs
                options = settings_kwargs(settings)

                def localize_with_settings(coinc, psd, omp_threads):
                    return localize(coinc, psd, **{**options, "omp_threads": omp_threads})
                products["localize"] = localize_with_settings
            fits = products["localize"](_read_file(client, graceid, "coinc.xml"),
                                        _read_file(client, graceid, "psd.xml.gz"),
                                        omp_threads=settings.omp_threads_effective)
            client.write_log(graceid, "BAYESTAR sky map", filename=SKYMAP_FILENAME,
                             filecontents=fits, tag_name=["sky_loc"])
            uploaded.append(SKYMAP_FILENAME)
            _ensure_label(client, graceid, SKYMAP_READY)
            if "plot_allsky" not in products:
                from gw_ops.science.skymap_products import plot_allsky
                products["plot_allsky"] = plot_allsky
            client.write_log(graceid, "Mollweide projection of the sky map",
                             filename="bayestar.png", filecontents=products["plot_allsky"](fits),
                             tag_name=["sky_loc"])
            uploaded.append("bayestar.png")
            if "flatten" not in products:
                from gw_ops.science.skymap_products import flatten
                products["flatten"] = lambda data: flatten(data, settings.skymap_flatten_nside)
            client.write_log(graceid, "Flattened (HEALPix) sky map", filename="bayestar.fits.gz",
                             filecontents=products["flatten"](fits), tag_name=["sky_loc"])
            uploaded.append("bayestar.fits.gz")
    finally:
        redis_client.delete(lock)
    return uploaded


def wait_seconds_until_second_preliminary(first_sent_unix: float,
                                          settings: Settings | None = None,
                                          now: float | None = None) -> float:
    """Seconds left before :func:`second_preliminary` is due (0 when due)."""
    settings = settings or get_settings()
    now = time.time() if now is None else now
    return max(0.0, first_sent_unix + settings.preliminary_cleanup_timeout_s - now)


# --- the openmp lane: localizations and volume renderings -------------------------------

#: Superevent nodes (one per category).
SUPEREVENT_NODES = ("superevent", "mdc_superevent", "test_superevent")
#: Nodes of CBC G events, production/MDC and Test group.
CBC_EVENT_NODES = tuple(f"cbc_{p}" for p in ("gstlal", "pycbc", "spiir", "mbta", "mbtaonline")) + \
    tuple(f"test_{p}" for p in ("gstlal", "pycbc", "spiir", "mbta", "mbtaonline"))


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
    if not (kind == "new" or (kind == "log" and data.get("filename") in ("coinc.xml", "psd.xml.gz"))):
        return None
    graceid = message.get("uid")
    superevent_id = (message.get("object") or {}).get("superevent")
    if superevent_id is None:
        superevent_id = _json(client.event(graceid)).get("superevent")
    if superevent_id:
        preferred = _json(client.superevent(superevent_id)).get("preferred_event")
        if preferred and preferred != graceid:
            log.info("not localizing %s: %s prefers %s", graceid, superevent_id, preferred)
            return None
    return graceid


@lvalert.handler(*CBC_EVENT_NODES, *SUPEREVENT_NODES, pool="openmp", priority_weight=100)
def localize_preferred(message: Mapping[str, Any], *, settings: Settings | None = None,
                       client=None) -> list[str]:
    """BAYESTAR sky map, p_astro and em_bright of each superevent's preferred G event.

    Runs in the ``openmp`` pool (queue ``openmp`` on the Celery stack) with
    ``omp_threads`` OpenMP threads.  See :func:`event_to_localize` for which events are
    localized and :func:`handle_cbc_event` for the products (each made once).

    Returns
    -------
    list of str
        Files uploaded.
    """
    settings = settings or get_settings()
    client = client or _gracedb(settings)
    graceid = event_to_localize(message, client)
    if graceid is None:
        return []
    return handle_cbc_event({"uid": graceid, "alert_type": "new", "data": {}}, settings=settings,
                            client=client)


@lvalert.handler(*SUPEREVENT_NODES, pool="openmp", priority_weight=1)
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
            data.get("name") != "GCN_PRELIM_SENT":
        return None
    superevent_id = message["uid"]
    client = client or _gracedb(settings)
    if "bayestar.volume.png" in _file_names(client, superevent_id):
        return None
    if SKYMAP_FILENAME not in _file_names(client, superevent_id):
        return None
    from gw_ops.science.skymap_products import plot_volume
    png = plot_volume(_read_file(client, superevent_id, SKYMAP_FILENAME),
                      omp_threads=settings.omp_threads_effective)
    client.write_log(superevent_id, "Volume rendering of the sky map", filename="bayestar.volume.png",
                     filecontents=png, tag_name=["sky_loc"])
    return "bayestar.volume.png"
