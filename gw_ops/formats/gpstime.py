"""GPS <-> UTC conversion with the leap-second table (no astropy import on the hot path)."""
from __future__ import annotations

import datetime as dt

GPS_EPOCH = dt.datetime(1980, 1, 6, tzinfo=dt.timezone.utc)

#: UTC dates at which a leap second took effect since the GPS epoch.
_LEAP_DATES = [
    (1981, 7, 1), (1982, 7, 1), (1983, 7, 1), (1985, 7, 1), (1988, 1, 1),
    (1990, 1, 1), (1991, 1, 1), (1992, 7, 1), (1993, 7, 1), (1994, 7, 1),
    (1996, 1, 1), (1997, 7, 1), (1999, 1, 1), (2006, 1, 1), (2009, 1, 1),
    (2012, 7, 1), (2015, 7, 1), (2017, 1, 1),
]
# GPS second at which each leap second (count = index + 1) applies.
_LEAP_GPS = [
    (dt.datetime(*date, tzinfo=dt.timezone.utc) - GPS_EPOCH).total_seconds() + index + 1
    for index, date in enumerate(_LEAP_DATES)
]


def gps_to_utc(gps: float) -> dt.datetime:
    """UTC time (aware datetime) of a GPS time in seconds."""
    leaps = sum(1 for leap in _LEAP_GPS if gps >= leap)
    return GPS_EPOCH + dt.timedelta(seconds=float(gps) - leaps)


def utc_to_gps(when: dt.datetime) -> float:
    """GPS time (s) of an aware UTC datetime."""
    seconds = (when - GPS_EPOCH).total_seconds()
    leaps = sum(1 for date in _LEAP_DATES
                if when >= dt.datetime(*date, tzinfo=dt.timezone.utc))
    return seconds + leaps


def now_gps() -> float:
    """Current GPS time (s)."""
    return utc_to_gps(dt.datetime.now(dt.timezone.utc))


def gracedb_timestamp(when: dt.datetime) -> str:
    """Timestamp text as GraceDB writes it, e.g. ``2019-04-25 08:18:26 UTC``."""
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
