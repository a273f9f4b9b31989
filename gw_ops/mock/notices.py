"""Mock GCN notices: a Fermi GBM-style notice for the mock-event challenge.

Every second mock event gets one (see :mod:`gw_ops.mock.pipeline`), published through
the VOEvent broker, so that RAVEN finds a coincidence.  The trigger id is a string such
as ``mock<gps>``: trigger ids are strings, not numbers.
"""
from __future__ import annotations

import re

_MOCK_TEMPLATE = """<?xml version='1.0' encoding='UTF-8'?>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    ivorn="ivo://nasa.gsfc.gcn/Fermi#{marker}GBM_Gnd_Pos_{iso}_{trigger_id}_0-000"
    role="{role}" version="2.0"
    xsi:schemaLocation="http://www.ivoa.net/xml/VOEvent/v2.0 http://www.ivoa.net/xml/VOEvent/VOEvent-v2.0.xsd">
  <Who>
    <AuthorIVORN>ivo://gw-ops/mock</AuthorIVORN>
    <Author><shortName>gw-ops mock Fermi GBM</shortName></Author>
    <Date>{iso}</Date>
  </Who>
  <What>
    <Param name="Packet_Type" value="112"/>
    <Param name="Pkt_Ser_Num" value="1"/>
    <Param name="TrigID" value="{trigger_id}" ucd="meta.id"/>
    <Param name="Sequence_Num" value="0" ucd="meta.id.part"/>
    <Param name="Most_Likely_Index" value="4" unit="dn"/>
    <Param name="Most_Likely_Prob" value="100"/>
    <Param name="Sec_Most_Likely_Index" value="0" unit="dn"/>
    <Param name="Sec_Most_Likely_Prob" value="0"/>
    <Group name="Trigger_ID">
      <Param name="Def_NOT_a_GRB" value="false"/>
      <Param name="Test_Submission" value="{test_flag}"/>
    </Group>
    <Description>Mock Fermi-GBM ground position made by gw-ops.</Description>
  </What>
  <WhereWhen>
    <ObsDataLocation>
      <ObservatoryLocation id="GEOLUN"/>
      <ObservationLocation>
        <AstroCoordSystem id="UTC-FK5-GEO"/>
        <AstroCoords coord_system_id="UTC-FK5-GEO">
          <Time unit="s"><TimeInstant><ISOTime>{iso}Z</ISOTime></TimeInstant></Time>
          <Position2D unit="deg">
            <Name1>RA</Name1><Name2>Dec</Name2>
            <Value2><C1>{ra:.4f}</C1><C2>{dec:.4f}</C2></Value2>
            <Error2Radius>{error:.4f}</Error2Radius>
          </Position2D>
        </AstroCoords>
      </ObservationLocation>
    </ObsDataLocation>
  </WhereWhen>
  <How><Description>Fermi Satellite, GBM Instrument (mock)</Description></How>
  <Why importance="0.95">
    <Inference probability="1.0"><Concept>process.variation.burst;em.gamma</Concept></Inference>
  </Why>
</voe:VOEvent>
"""


def make_mock_grb_notice(trigger_id: str | int, gps_time: float, ra: float, dec: float,
                         error_deg: float, role: str = "observation", mdc: bool = True) -> bytes:
    """A Fermi GBM ground-position VOEvent (type 112) for mock coincidences.

    Parameters
    ----------
    trigger_id : str or int
        Trigger id (``TrigID``); digits and letters only.
    gps_time : float
        Trigger time (GPS s).
    ra, dec : float
        Position (deg).
    error_deg : float
        Statistical error radius (deg), positive.
    role : str
        VOEvent role (``observation`` by default; ``test`` makes a Test-group event).
    mdc : bool
        Mark the notice as a rehearsal (``mdc-test_event`` in the IVORN, GWCelery's
        marker): its event has search MDC and pairs only with MDC superevents, which
        keeps mock triggers apart from real ones.  Default True.

    Returns
    -------
    bytes
        The VOEvent XML, accepted by
        :func:`gw_ops.handlers.external_triggers.parse_notice`.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", str(trigger_id)):
        raise ValueError(f"trigger id {trigger_id!r} must be letters, digits, _ or -")
    if not (0 <= ra <= 360 and -90 <= dec <= 90 and 0 < error_deg <= 180):
        raise ValueError("position or error radius outside the sky")
    if role not in ("test", "observation", "utility"):
        raise ValueError(f"role must be test, observation or utility, not {role!r}")
    from gw_ops.formats.gpstime import gps_to_utc

    iso = gps_to_utc(gps_time).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]  # millisecond precision
    return _MOCK_TEMPLATE.format(iso=iso, trigger_id=trigger_id, role=role,
                                 marker="mdc-test_event_" if mdc else "",
                                 test_flag="true" if role == "test" else "false",
                                 ra=ra, dec=dec, error=error_deg).encode()
