"""Alert sender: send one public alert at most once, and record it in GraceDB.

What to send is decided by :mod:`gw_ops.rules.alert_policy`; this module builds the
notice (:mod:`gw_ops.formats.voevent`), appends it to the outgoing VOEvent stream and
records it.

Idempotency and races (delivery is at-least-once)
-------------------------------------------------
The alerts already sent are the union of two records:

* GraceDB, durable: every sent VOEvent is uploaded with a log comment naming its key;
* Redis, the race guard: one Lua script atomically checks that neither the key nor the
  serial number is taken, appends the VOEvent to the outgoing stream and records
  key, serial number and XML in the hash ``P alerts:<superevent_id>``.  Two concurrent
  deliveries of the same label therefore append one VOEvent; a worker that crashed after
  the append but before the GraceDB upload is completed by the redelivery (the XML is
  taken from the Redis record, not rebuilt).

This module is imported by the DAG processor (through the orchestrator): only light
imports at module level.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gw_ops import gracedb_client as gateway
from gw_ops.config import Settings, get_settings
from gw_ops.formats import alert_content, circular, gpstime, json_alert, voevent
from gw_ops.handlers import kafka_alerts
from gw_ops.rules.alert_policy import (
    AlertDecision,
    gcn_notice_number,
    is_significant,
    latest_files,
    newest_matching,
    next_serial_number,
    sent_alerts_from_logs,
    type_of_key,
)
from gw_ops.vocabulary import (
    EMBRIGHT_FILENAME,
    GCN_PRELIM_SENT,
    IMAGE_FILENAMES,
    PASTRO_FILENAME,
    PRODUCT_FILENAMES,
)

log = logging.getLogger(__name__)

#: GraceDB tags of the files anonymous readers may see (the sent notice and JSON alert).
PUBLIC_TAGS = ["public", "em_follow"]
#: Maximum tries to win a serial number against concurrent senders.
_SERIAL_TRIES = 5


def default_clients(settings: Settings, client=None, redis_client=None) -> tuple[Any, Any]:
    """The given GraceDB and Redis clients, or the pipeline's for these settings."""
    if client is None:
        client = gateway.pipeline_client(settings)
    if redis_client is None:
        from gw_ops.transport.redis_client import get_redis
        redis_client = get_redis(settings)
    return client, redis_client


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
    # subscribers follow it: the public address, not the one the pipeline uses
    base = settings.gracedb_public_api_url.rstrip("/")
    base = base[:-4] if base.endswith("/api") else base
    return f"{base}/superevents/{superevent_id}/view/"


def _file_url(settings: Settings, object_id: str, filename: str,
              version: int | None) -> str:
    suffix = "" if version is None else f",{version}"
    return f"{settings.gracedb_public_api_url}superevents/{object_id}/files/{filename}{suffix}"


def copy_preferred_event_products(client, superevent: Mapping[str, Any],
                                  names: tuple[str, ...] = PRODUCT_FILENAMES) -> list[str]:
    """Copy files of the preferred event to the superevent.

    A file is uploaded only when the superevent lacks it or holds different bytes, so a
    redelivery uploads nothing and a changed preferred event uploads a new version.
    Files the preferred event does not have are passed over.

    Parameters
    ----------
    client : ligo.gracedb.rest.GraceDb
    superevent : dict
        The superevent's GraceDB JSON.
    names : tuple of str
        File names to copy; by default the sky map and classification files an alert
        needs (:data:`gw_ops.vocabulary.PRODUCT_FILENAMES`).

    Returns
    -------
    list of str
        Names of the files uploaded now.
    """
    superevent_id = superevent["superevent_id"]
    preferred = superevent["preferred_event"]
    event_files = gateway.file_names(client, preferred)
    superevent_files = gateway.file_names(client, superevent_id)
    copied = []
    for name in names:
        if name not in event_files:
            continue
        contents = gateway.read_file(client, preferred, name)
        if name in superevent_files and gateway.read_file(client, superevent_id, name) == contents:
            continue
        gateway.write(client.write_log, superevent_id,
                      f"Copied {name} from the preferred event {preferred}",
                      filename=name, filecontents=contents, tag_name=PUBLIC_TAGS)
        copied.append(name)
    return copied


def _external_coinc(client, superevent: Mapping[str, Any]) -> alert_content.ExternalCoinc | None:
    """The coincident external trigger of a superevent, when RAVEN recorded one."""
    external_id = superevent.get("em_type")
    if not external_id or superevent.get("time_coinc_far") is None:
        return None
    try:
        external = gateway.event(client, external_id)
    except Exception:  # the coincidence is optional content; the alert must still go
        log.exception("could not read external event %s", external_id)
        return None
    grb = (external.get("extra_attributes") or {}).get("GRB") or {}
    return alert_content.ExternalCoinc(
        gcn_notice_id=gcn_notice_number(grb.get("trigger_id")),
        ivorn=grb.get("ivorn") or "",
        observatory=external.get("pipeline") or "",
        search=external.get("search") or "",
        time_difference=float(external.get("gpstime", 0.0)) - float(superevent.get("t_0", 0.0)),
        time_coincidence_far=float(superevent["time_coinc_far"]),
        time_sky_position_coincidence_far=superevent.get("space_coinc_far"))


def gather_content(client, settings: Settings, superevent: Mapping[str, Any],
                   logs: Sequence[Mapping[str, Any]], labels: Iterable[str],
                   alert_type: str, serial_number: int,
                   cited_ivorns: Sequence[str] = ()) -> alert_content.AlertContent:
    """Read what an alert says from GraceDB (superevent, preferred event, files)."""
    superevent_id = superevent["superevent_id"]
    event = superevent.get("preferred_event_data") or gateway.event(
        client, superevent["preferred_event"])
    versions = latest_files(logs)
    skymap_name = newest_matching(logs, ".multiorder.fits")
    skymap_bytes = gateway.read_file(client, superevent_id, skymap_name) if skymap_name else None
    classification, properties = {}, {}
    pastro_name = newest_matching(logs, PASTRO_FILENAME)
    if pastro_name and event.get("group", "CBC") == "CBC":
        classification = json.loads(gateway.read_file(client, superevent_id, pastro_name))
    embright_name = newest_matching(logs, EMBRIGHT_FILENAME)
    if embright_name and event.get("group", "CBC") == "CBC":
        em_bright = json.loads(gateway.read_file(client, superevent_id, embright_name))
        properties = {k: em_bright[k] for k in alert_content.PROPERTY_KEYS if k in em_bright}
    instruments = event.get("instruments") or ""
    if isinstance(instruments, str):
        instruments = tuple(i for i in instruments.split(",") if i)
    return alert_content.AlertContent(
        superevent_id=superevent_id,
        alert_type=alert_type,
        serial_number=serial_number,
        time_created=gpstime.utc_now_iso(),
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
                       xml: bytes, content: alert_content.AlertContent | None) -> None:
    """Upload the sent VOEvent (with its key), the JSON alert and the Circular draft."""
    filename = alert_content.voevent_filename(superevent_id, serial, decision.alert_type)
    gateway.write(client.write_log, superevent_id,
                  f"Sent {decision.alert_type} GCN notice "
                  f"{alert_content.ivorn(superevent_id, serial, decision.alert_type)} "
                  f"[alert key {decision.key}]",
                  filename=filename, filecontents=xml, tag_name=PUBLIC_TAGS)
    if content is None:
        return  # completing a crashed sender's record: the notice is what counts
    stem = filename[:-len(".xml")]
    alert_json = json.dumps(json_alert.build_json_alert(content), separators=(",", ":"))
    gateway.write(client.write_log, superevent_id, f"JSON alert of {content.ivorn}",
                  filename=f"{stem}.json", filecontents=alert_json.encode(), tag_name=PUBLIC_TAGS)
    if decision.alert_type != alert_content.EARLY_WARNING:
        gateway.write(client.write_log, superevent_id, f"GCN Circular draft for {content.ivorn}",
                      filename=f"{stem}.circular.txt",
                      filecontents=circular.build_circular(content).encode())


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
    client, redis_client = default_clients(settings, client, redis_client)
    record_key = alert_record_key(settings, superevent_id)

    logs = gateway.logs(client, superevent_id)
    in_gracedb = sent_alerts_from_logs(logs)
    if decision.key in in_gracedb:
        serial = in_gracedb[decision.key]
        _after_send(client, superevent_id, decision)
        return {"status": "already sent", "key": decision.key, "serial_number": serial,
                "ivorn": alert_content.ivorn(superevent_id, serial, decision.alert_type)}

    if (decision.alert_type == alert_content.PRELIMINARY
            and decision.key not in _redis_sent(redis_client, settings, superevent_id)):
        superevent = gateway.superevent(client, superevent_id)
        if copy_preferred_event_products(client, superevent):
            logs = gateway.logs(client, superevent_id)

    superevent = gateway.superevent(client, superevent_id)
    labels = gateway.labels(client, superevent_id)
    script = redis_client.register_script(_APPEND_ONCE)
    for _ in range(_SERIAL_TRIES):
        in_redis = _redis_sent(redis_client, settings, superevent_id)
        if decision.key in in_redis:
            break
        known = {**in_redis, **in_gracedb}
        serial = next_serial_number(known.values())
        cited = [alert_content.ivorn(superevent_id, s, type_of_key(k))
                 for k, s in sorted(known.items(), key=lambda item: item[1])]
        content = gather_content(client, settings, superevent, logs, labels,
                                 decision.alert_type, serial, cited)
        xml = voevent.build_voevent(content)
        voevent.validate_voevent(xml)
        alert_json = json_alert.build_json_alert(content)
        _validate_json(alert_json)  # before anything is published: a rejected alert never goes
        kafka_alerts.prepare(alert_json, settings)  # every Kafka form built and validated too
        status, detail = script(keys=[record_key, _outgoing_stream(settings)],
                                args=[decision.key, serial, xml, content.ivorn,
                                      int(settings.alert_record_ttl_s), _outgoing_maxlen()])
        if int(status) == 1:
            log.info("sent %s (%s)", content.ivorn, decision.reason)
            # recorded in GraceDB only once every Kafka broker acknowledged it
            kafka_alerts.deliver(settings, redis_client, record_key, superevent_id, decision.key, alert_json)
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
    if decision.key not in sent_alerts_from_logs(gateway.logs(client, superevent_id)):
        xml = redis_client.hget(record_key, f"xml:{decision.key}")
        kafka_alerts.deliver(settings, redis_client, record_key, superevent_id, decision.key, None)
        _record_in_gracedb(client, superevent_id, decision, serial, xml, None)
        status = "completed"
    else:
        status = "already sent"
    _after_send(client, superevent_id, decision)
    return {"status": status, "key": decision.key, "serial_number": serial,
            "ivorn": alert_content.ivorn(superevent_id, serial, decision.alert_type)}


def _validate_json(alert: dict[str, Any]) -> None:
    """Check the alert's JSON form against igwn-gwalert-schema; a rejection is a gw-ops bug:
    logged as an error and raised, so that alert stops, red, with the schema's reason."""
    from gw_ops.formats.schema import AlertSchemaError, validate_json_alert

    try:
        validate_json_alert(alert)
    except AlertSchemaError as exc:
        log.error("NOT SENT: %s", exc.reason)
        raise


def _outgoing_stream(settings: Settings) -> str:
    from gw_ops.transport.redis_client import voevent_outgoing_stream
    return voevent_outgoing_stream(settings)


def _after_send(client, superevent_id: str, decision: AlertDecision) -> None:
    """Labels that record a sent alert, then the preferred event's images on the
    superevent (as GWCelery shows them there); both idempotent.  The images come after the
    alert, never before it: they are for people reading GraceDB, not for the alert."""
    # A public alert makes its superevent public, as GraceDB's "expose" does for GWCelery:
    # anonymous readers then find the EventPage URL the alert carries.
    gateway.write(client.modify_permissions, superevent_id, "expose")
    if decision.alert_type == alert_content.PRELIMINARY:
        gateway.ensure_label(client, superevent_id, GCN_PRELIM_SENT)
        copy_preferred_event_products(client, gateway.superevent(client, superevent_id),
                                      IMAGE_FILENAMES)


def sent_keys(client, settings: Settings, redis_client, superevent_id: str) -> set[str]:
    """Keys of the alerts sent for a superevent: recorded in GraceDB or in Redis."""
    return (set(sent_alerts_from_logs(gateway.logs(client, superevent_id)))
            | set(_redis_sent(redis_client, settings, superevent_id)))


def complete_unrecorded_alerts(superevent_id: str, *, settings: Settings, client,
                               redis_client) -> list[dict[str, Any]]:
    """Finish alerts that were appended to the outgoing stream but never recorded in
    GraceDB (the sender died in between): upload the very VOEvent that was sent, add
    its labels.  Every handler call runs this first, so a redelivery repairs the record.
    """
    unrecorded = (set(_redis_sent(redis_client, settings, superevent_id))
                  - set(sent_alerts_from_logs(gateway.logs(client, superevent_id))))
    return [send_alert(AlertDecision(type_of_key(key), key, "complete the GraceDB record"),
                       superevent_id, settings=settings, client=client,
                       redis_client=redis_client)
            for key in sorted(unrecorded)]
