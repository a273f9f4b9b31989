"""A plain-text GCN Circular draft of an alert, for a human to complete and send.

Examples
--------
>>> from gw_ops.formats.alert_content import AlertContent
>>> content = AlertContent(superevent_id="MS230101a", alert_type="Preliminary",
...                        serial_number=1, time_created="2023-01-01T00:01:00Z",
...                        event_time_gps=1356566418.5, far=1e-9, significant=True,
...                        group="CBC", pipeline="gstlal", search="MDC",
...                        instruments=("H1", "L1"))
>>> build_circular(content).splitlines()[0]
'SUBJECT: LIGO/Virgo/KAGRA MS230101a: Identification of a GW compact binary merger candidate'
"""
from __future__ import annotations

from gw_ops.formats.alert_content import PROPERTY_KEYS, RETRACTION, AlertContent


def _far_text(far_hz: float) -> str:
    """A FAR in Hz as the Circulars write it: ``1 per 12.3 years`` or ``2.1e-05 Hz``."""
    if far_hz <= 0:
        return "0 Hz"
    per_year = far_hz * 365.25 * 86400
    if per_year < 1:
        return f"{far_hz:.3g} Hz, or about one in {1 / per_year:.4g} years"
    return f"{far_hz:.3g} Hz, or about {per_year:.4g} per year"


def build_circular(content: AlertContent) -> str:
    """A plain-text GCN Circular draft of the alert (for a human to complete and send).

    Parameters
    ----------
    content : AlertContent

    Returns
    -------
    str
        Subject line, blank line, body.
    """
    sid = content.superevent_id
    if content.alert_type == RETRACTION:
        subject = f"LIGO/Virgo/KAGRA {sid}: Retraction"
        body = (f"The LIGO Scientific Collaboration, the Virgo Collaboration, and the KAGRA "
                f"Collaboration report:\n\n"
                f"We are retracting the candidate {sid} (GCN notices "
                f"{', '.join(content.cited_ivorns) or 'issued earlier'}).\n\n"
                f"Further investigation shows that it is not a viable gravitational-wave "
                f"candidate. The event page is {content.event_page}\n")
        return f"SUBJECT: {subject}\n\n{body}"

    kind = {"CBC": "compact binary merger candidate", "Burst": "unmodeled burst candidate"}.get(
        content.group, "candidate")
    subject = f"LIGO/Virgo/KAGRA {sid}: Identification of a GW {kind}"
    lines = [
        "The LIGO Scientific Collaboration, the Virgo Collaboration, and the KAGRA "
        "Collaboration report:",
        "",
        f"We identified the {kind} {sid} during real-time processing of data from "
        f"{', '.join(content.instruments)} at {content.event_time_iso} (GPS time: "
        f"{content.event_time_gps:.3f}). The candidate was found by the {content.pipeline} "
        f"analysis pipeline ({content.search} search) with a false alarm rate of "
        f"{_far_text(content.far)}. It is {'' if content.significant else 'not '}"
        f"a significant candidate.",
        "",
        f"The event page is {content.event_page}",
    ]
    if content.skymap_url:
        lines += ["", f"The sky localization ({content.skymap_filename or 'sky map'}) is "
                      f"available at {content.skymap_url}"]
    if content.group == "CBC" and content.classification:
        lines += ["", "The classification of the source, assuming it is astrophysical or "
                      "terrestrial, is:"]
        lines += [f"  {key} ({content.classification[key]:.0%})"
                  for key in sorted(content.classification,
                                    key=lambda k: -content.classification[k])]
    if content.group == "CBC" and content.properties:
        lines += ["", "Assuming the candidate is astrophysical:"]
        lines += [f"  {key}: {content.properties[key]:.0%}" for key in PROPERTY_KEYS
                  if key in content.properties]
    if content.external_coinc is not None:
        coinc = content.external_coinc
        lines += ["", f"The candidate is coincident with {coinc.observatory} trigger "
                      f"{coinc.gcn_notice_id} ({coinc.search}), {coinc.time_difference:+.2f} s "
                      f"from the GW time (coincidence FAR {coinc.time_coincidence_far:.3g} Hz)."]
    lines += ["", f"This Circular accompanies the {content.alert_type} GCN notice "
                  f"{content.ivorn}."]
    return f"SUBJECT: {subject}\n\n" + "\n".join(lines) + "\n"
