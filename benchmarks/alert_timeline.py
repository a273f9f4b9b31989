"""Where the seconds of one preliminary alert go, read back from a stack's own records.

Every LVAlert message and every sent VOEvent is a Redis stream entry whose id is the
millisecond it was written, so the alert path's steps can be timed after the fact,
without instrumenting anything:

========================  =============================================================
upload                    the G event's ``new`` message
classified                its ``PASTRO_READY`` label (the openmp lane has started)
sky map ready             its ``SKYMAP_READY`` label
superevent complete       the superevent's ``SIGNIF_LOCKED`` (or ``LOW_SIGNIF_LOCKED``)
                          label, written by the superevent lane
VOEvent sent              the Preliminary appended to the outgoing VOEvent stream
========================  =============================================================

Usage, on the state folder of a stack that ran ``gw-ops demo`` (still up)::

    python benchmarks/alert_timeline.py [--state-dir DIR] [GRACEID]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: Steps of the alert path, in order: (name, what marks it).
STEPS = ("upload", "classified", "sky map ready", "superevent complete", "VOEvent sent")


def _ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-")[0])


def _entries(client, stream: str):
    for entry_id, fields in client.xrange(stream):
        try:
            yield _ms(entry_id), json.loads(fields.get(b"payload", b"{}"))
        except (ValueError, TypeError):
            yield _ms(entry_id), {}


def alert_timeline(client, settings, graceid: str) -> dict[str, float]:
    """Unix times (s) of the steps of :data:`STEPS` for one G event; missing steps left out.

    Parameters
    ----------
    client : redis.Redis
        The stack's Redis.
    settings : gw_ops.config.Settings
        The stack's settings (key prefix).
    graceid : str
        The uploaded G event.
    """
    from gw_ops.transport.redis_client import voevent_outgoing_stream
    from gw_ops.vocabulary import LOW_SIGNIF_LOCKED, SIGNIF_LOCKED

    times: dict[str, float] = {}
    superevent_id = None
    for stream in client.scan_iter(match=settings.key("lvalert", "*"), count=1000):
        for ms, message in _entries(client, stream.decode()):
            uid, kind = message.get("uid"), message.get("alert_type")
            data = message.get("data") or {}
            step = None
            if uid == graceid and kind == "new":
                step = "upload"
                superevent_id = superevent_id or (message.get("object") or {}).get("superevent")
            elif uid == graceid and kind == "label_added":
                step = {"PASTRO_READY": "classified", "SKYMAP_READY": "sky map ready"}.get(data.get("name"))
            elif kind == "new" and (message.get("object") or {}).get("preferred_event") == graceid:
                superevent_id = uid
            elif kind == "label_added" and data.get("name") in (SIGNIF_LOCKED, LOW_SIGNIF_LOCKED):
                step = ("superevent complete", uid)
            if isinstance(step, tuple):
                times.setdefault(f"{step[0]}:{step[1]}", ms / 1000)
            elif step:
                times[step] = min(times.get(step, float("inf")), ms / 1000)
    if superevent_id:
        if f"superevent complete:{superevent_id}" in times:
            times["superevent complete"] = times[f"superevent complete:{superevent_id}"]
        from gw_ops.formats.voevent import voevent_params
        for entry_id, fields in client.xrange(voevent_outgoing_stream(settings)):
            params = voevent_params(fields[b"xml"])
            if params.get("GraceID") == superevent_id and params.get("AlertType") == "Preliminary":
                times["VOEvent sent"] = _ms(entry_id) / 1000
                break
    return {step: times[step] for step in STEPS if step in times}


def format_timeline(times: dict[str, float], received: float | None = None) -> list[str]:
    """Lines ``seconds after the upload, step (+ seconds since the step before)``."""
    if received is not None:
        times = {**times, "on the wire (pygcn)": received}
    start = times.get("upload")
    lines, previous = [], start
    for step, moment in times.items():
        if start is None:
            lines.append(f"  {'?':>7}  {step}")
            continue
        lines.append(f"  {moment - start:7.2f} s  {step:<22} (+{moment - previous:.2f} s)")
        previous = moment
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graceid", nargs="?", help="G event (default: the newest one)")
    parser.add_argument("--state-dir", help="state folder of the running stack")
    args = parser.parse_args()
    from gw_ops.config import get_settings
    from gw_ops.ops.stack import running_settings
    from gw_ops.transport.redis_client import get_redis

    settings = running_settings(get_settings(**({"state_dir": Path(args.state_dir)} if args.state_dir else {})))
    client = get_redis(settings)
    graceid = args.graceid
    if graceid is None:  # the newest G event: the newest `new` on a pipeline's node
        from gw_ops.vocabulary import SUPEREVENT_NODES
        newest = (0, None)
        for stream in client.scan_iter(match=settings.key("lvalert", "*"), count=1000):
            if stream.decode().rsplit(":", 1)[-1] in SUPEREVENT_NODES:
                continue
            for ms, message in _entries(client, stream.decode()):
                if message.get("alert_type") == "new":
                    newest = max(newest, (ms, message["uid"]))
        graceid = newest[1]
    print(f"{graceid}:")
    print("\n".join(format_timeline(alert_timeline(client, settings, graceid))))


if __name__ == "__main__":
    main()
