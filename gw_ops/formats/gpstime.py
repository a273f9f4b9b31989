"""GPS <-> UTC conversion, with the leap seconds astropy knows (no table typed here).

GPS time counts SI seconds since 1980-01-06T00:00:00 UTC without leap seconds; UTC
has inserted one at the end of some days since (18 by 2017).  astropy (through erfa,
kept current from the IERS by astropy's ``astropy-iers-data``) is the one source of
those leap seconds here.

A conversion through :class:`astropy.time.Time` costs about 0.3 ms, and importing
astropy.time about 0.3 s; the local GraceDB and the handlers convert on hot paths
(every event it serialises, every notice it parses), and the DAG processor imports
this module.  So astropy is imported only on the first conversion, which asks it once
for the GPS time at which each leap second took effect; every conversion after that
is datetime arithmetic on that cached list (a few microseconds).

Examples
--------
>>> gps_to_utc_iso(1187008882.4)  # GW170817
'2017-08-17T12:41:04.400000Z'
>>> utc_to_gps(dt.datetime(2015, 9, 14, 9, 50, 45, 400000, tzinfo=dt.timezone.utc))  # GW150914
1126259462.4
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache

#: Origin of GPS time.
GPS_EPOCH = dt.datetime(1980, 1, 6, tzinfo=dt.timezone.utc)


@lru_cache(maxsize=1)
def _leap_steps() -> tuple[tuple[float, dt.datetime, int], ...]:
    """Each leap second since the GPS epoch, as astropy knows them.

    Returns
    -------
    tuple of (float, datetime, int)
        For each leap second: the first GPS second (s) at which it counts, the UTC
        time it took effect (start of the day after it) and the GPS - UTC offset (s)
        from then on, in time order.
    """
    import erfa  # astropy's dependency; Time keeps its leap-second table current
    from astropy.time import Time

    # Converting once makes astropy bring erfa's table up to date (from the IERS data it
    # ships) before the table is read.
    _ = Time(GPS_EPOCH, scale="utc").gps
    starts = [dt.datetime(int(year), int(month), 1, tzinfo=dt.timezone.utc)
              for year, month, _ in erfa.leap_seconds.get()
              if dt.datetime(int(year), int(month), 1, tzinfo=dt.timezone.utc) > GPS_EPOCH]
    if not starts:
        return ()
    first_gps = Time(starts, scale="utc").gps  # one vectorised conversion
    steps = []
    for start, gps in zip(starts, first_gps):
        offset = round(float(gps) - (start - GPS_EPOCH).total_seconds())
        steps.append(((start - GPS_EPOCH).total_seconds() + offset, start, offset))
    return tuple(steps)


def gps_to_utc(gps: float) -> dt.datetime:
    """UTC time of a GPS time.

    Parameters
    ----------
    gps : float
        GPS time (s).

    Returns
    -------
    datetime.datetime
        Aware (UTC), to the microsecond.  An instant inside a leap second (23:59:60,
        which datetime cannot hold) comes out as the first second of the next day.
    """
    offset = 0
    for first_gps, _start, steps in _leap_steps():
        if gps >= first_gps:
            offset = steps
    return GPS_EPOCH + dt.timedelta(seconds=float(gps) - offset)


def utc_to_gps(when: dt.datetime) -> float:
    """GPS time of a UTC time.

    Parameters
    ----------
    when : datetime.datetime
        Aware datetime (any time zone).

    Returns
    -------
    float
        GPS time (s).
    """
    offset = 0
    for _first_gps, start, steps in _leap_steps():
        if when >= start:
            offset = steps
    return (when - GPS_EPOCH).total_seconds() + offset


def gps_to_utc_iso(gps: float) -> str:
    """UTC time of a GPS time, ISO 8601 with microseconds and ``Z``.

    Parameters
    ----------
    gps : float
        GPS time (s).

    Returns
    -------
    str
        e.g. ``'2017-08-17T12:41:04.400000Z'`` for GPS 1187008882.4.
    """
    return gps_to_utc(gps).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_gps() -> float:
    """Current GPS time (s)."""
    return utc_to_gps(dt.datetime.now(dt.timezone.utc))


def utc_now_iso() -> str:
    """The current UTC time to the second, ISO 8601 with ``Z`` (e.g. a VOEvent ``Who/Date``)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def gracedb_timestamp(when: dt.datetime) -> str:
    """Timestamp text as GraceDB writes it, e.g. ``2019-04-25 08:18:26 UTC``."""
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
