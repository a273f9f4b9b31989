"""The shared vocabulary: superevent ids, categories, nodes."""
from __future__ import annotations

import pytest

from gw_ops import vocabulary as V
from gw_ops.local_gracedb import constants as C


@pytest.mark.parametrize("superevent_id, category, node", [
    ("S261201a", "production", "superevent"),
    ("MS261201ab", "mdc", "mdc_superevent"),
    ("TS261201c", "test", "test_superevent"),
])
def test_superevent_id_gives_category_and_node(superevent_id, category, node):
    assert V.category_of_superevent_id(superevent_id) == category
    assert V.superevent_node(superevent_id) == node


def test_a_g_event_id_has_no_superevent_node():
    with pytest.raises(ValueError, match="not a superevent id"):
        V.superevent_node("G123456")


def test_local_gracedb_uses_the_same_prefixes_and_nodes():
    for code, name in C.SUPEREVENT_CATEGORIES.items():
        category = {"Production": "production", "MDC": "mdc", "Test": "test"}[name]
        assert C.SUPEREVENT_PREFIX[code] == V.CATEGORY_PREFIX[category]
        assert C.SUPEREVENT_NODE[code] == V.SUPEREVENT_NODE[category]


def test_node_lists():
    assert set(V.CBC_EVENT_NODES) < set(V.G_EVENT_NODES)
    assert "burst_cwb" in V.G_EVENT_NODES and "burst_cwb" not in V.CBC_EVENT_NODES
    assert V.SUPEREVENT_NODES == ("superevent", "mdc_superevent", "test_superevent")
