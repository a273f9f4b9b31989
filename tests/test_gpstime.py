"""GPS <-> UTC (gw_ops.formats.gpstime) against known events and astropy across leap seconds."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from gw_ops.formats import gpstime

UTC = dt.timezone.utc

# (GPS s, UTC): published event times and the edges of leap seconds.
KNOWN = [
    (0.0, dt.datetime(1980, 1, 6, tzinfo=UTC)),
    (1126259462.4, dt.datetime(2015, 9, 14, 9, 50, 45, 400000, tzinfo=UTC)),   # GW150914, 17 s
    (1187008882.4, dt.datetime(2017, 8, 17, 12, 41, 4, 400000, tzinfo=UTC)),   # GW170817, 18 s
    (1167264016.0, dt.datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),         # before the 18th
    (1167264018.0, dt.datetime(2017, 1, 1, tzinfo=UTC)),                       # after it
    (1119744015.0, dt.datetime(2015, 6, 30, 23, 59, 59, tzinfo=UTC)),          # before the 17th
    (1119744017.0, dt.datetime(2015, 7, 1, tzinfo=UTC)),                       # after it
    (46828801.0, dt.datetime(1981, 7, 1, tzinfo=UTC)),                         # after the 1st
]


@pytest.mark.parametrize("gps, utc", KNOWN)
def test_known_pairs_both_ways(gps, utc):
    assert gpstime.gps_to_utc(gps) == utc
    assert gpstime.utc_to_gps(utc) == pytest.approx(gps, abs=1e-6)


@pytest.mark.parametrize("gps, iso", [
    (1126259462.4, "2015-09-14T09:50:45.400000Z"),  # GW150914, offset 17 s
    (1187008882.4, "2017-08-17T12:41:04.400000Z"),  # GW170817, offset 18 s
    (0.0, "1980-01-06T00:00:00.000000Z"),
])
def test_gps_to_utc_iso(gps, iso):
    assert gpstime.gps_to_utc_iso(gps) == iso


def test_agrees_with_astropy_around_every_leap_second():
    from astropy.time import Time

    for first_gps, _start, _offset in gpstime._leap_steps():
        for gps in (first_gps - 2.25, first_gps + 0.5, first_gps + 86400 * 30):
            expected = Time(gps, format="gps").utc.to_datetime(timezone=UTC)
            assert abs((gpstime.gps_to_utc(gps) - expected).total_seconds()) < 1e-5, gps
            assert gpstime.utc_to_gps(expected) == pytest.approx(gps, abs=1e-5)
    # The 18 leap seconds between the GPS epoch and 2017, whatever astropy adds later.
    offsets = [offset for _, _, offset in gpstime._leap_steps()]
    assert offsets[:18] == list(range(1, 19))


def test_aware_datetimes_in_other_zones():
    cest = dt.timezone(dt.timedelta(hours=2))
    when = dt.datetime(2017, 8, 17, 14, 41, 4, 400000, tzinfo=cest)
    assert gpstime.utc_to_gps(when) == pytest.approx(1187008882.4, abs=1e-6)


def test_now_gps_is_now():
    before = dt.datetime.now(UTC)
    now = gpstime.now_gps()
    after = dt.datetime.now(UTC)
    assert gpstime.utc_to_gps(before) <= now <= gpstime.utc_to_gps(after)


def test_gracedb_timestamp():
    when = dt.datetime(2019, 4, 25, 10, 18, 26, 999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert gpstime.gracedb_timestamp(when) == "2019-04-25 08:18:26 UTC"


def test_import_leaves_astropy_out():
    """The DAG processor imports this module: astropy comes only with the first conversion."""
    code = ("import sys, gw_ops.formats.gpstime as g; assert 'astropy' not in sys.modules; "
            "g.gps_to_utc(0.0); assert 'astropy.time' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
