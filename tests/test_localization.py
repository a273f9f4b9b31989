"""Localization lane helpers that need no GraceDB (gw_ops.handlers.localization)."""
from __future__ import annotations

import os
import sys
import threading

import pytest

from gw_ops.handlers.localization import at_low_cpu_priority

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="per-thread nice values are a Linux feature")


def _own_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@linux_only
def test_work_runs_at_raised_niceness_and_the_caller_keeps_its_own():
    before = _own_niceness()
    seen = at_low_cpu_priority(_own_niceness, 10)
    assert seen == min(19, before + 10)
    assert _own_niceness() == before


def test_work_result_and_exception_reach_the_caller():
    assert at_low_cpu_priority(lambda: "made", 10) == "made"
    with pytest.raises(ValueError, match="bad sky map"):
        at_low_cpu_priority(lambda: (_ for _ in ()).throw(ValueError("bad sky map")), 10)


def test_niceness_zero_runs_in_the_calling_thread():
    assert at_low_cpu_priority(threading.get_native_id, 0) == threading.get_native_id()
