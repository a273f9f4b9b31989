"""The part of GraceDB's search language the pipeline uses, turned into SQL filters.

Terms are separated by spaces (``&`` and ``AND`` are ignored, all terms must hold):

* ``A .. B`` or ``gpstime: A .. B`` (events) / ``t_0: A .. B`` (superevents): time range (GPS s)
* ``t_start: A .. B``, ``t_end: A .. B``, ``gpstime: X``, ``far < X``, ``far <= X``, ``far > X``
* ``G100 .. G200`` event id range; ``G123`` one event
* ``group: CBC``, ``pipeline: gstlal``, ``search: AllSky`` or a bare group/pipeline/search name
* ``label: EM_READY`` or bare ``EM_READY``; ``~EM_READY`` / ``-EM_READY`` for "not labelled"
* ``superevent: S190425z`` (events)
* ``category: Production|MDC|Test``, ``is_gw: true|false``, ``preferred_event: G123``,
  ``preferred_event: G100 .. G200``, ``S190425z`` (superevents)

Queries are untrusted input from anonymous callers: a query is at most
:data:`MAX_QUERY_CHARS` long, is split into terms by ``str.split`` and a linear merge,
and every pattern below is unambiguous (no two ways to match the same text), so
matching never backtracks more than linearly.
"""
from __future__ import annotations

import re

from sqlalchemy import and_, exists, not_, select

from gw_ops.local_gracedb.constants import GROUPS, LABELS, PIPELINES, SEARCHES, SUPEREVENT_CATEGORIES
from gw_ops.local_gracedb.db import Event, Label, Superevent


class QueryError(ValueError):
    """The query text is not understood; the message says which term."""


#: Longest query accepted (characters); GraceDB's own queries are a few dozen.
MAX_QUERY_CHARS = 1024
#: A number.  ``\d+(?:\.\d*)?`` rather than ``\d+\.?\d*``: the latter can split a run of
#: digits between its two parts in n ways and backtracked quadratically on long digit runs.
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"({_NUMBER})\.\.({_NUMBER})")
_ID_RANGE = re.compile(r"([A-Z]+)(\d+)\.\.([A-Z]+)(\d+)")
_COMPARE = re.compile(rf"(far|gpstime|t_0|t_start|t_end)(<=|>=|<|>|==|=)({_NUMBER})", re.I)
#: Characters that join a term with its neighbour: ``a .. b``, ``key: value``, ``far < x``.
_JOINERS = ("..", ":", "<", ">", "=")


def _split_terms(text: str) -> list[str]:
    """Split into terms, keeping ``key: a .. b`` and ``far < x`` together (linear time)."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"query longer than {MAX_QUERY_CHARS} characters")
    terms: list[str] = []
    for word in text.split():
        if terms and (terms[-1].endswith(_JOINERS) or word.startswith(_JOINERS)):
            terms[-1] += word
        else:
            terms.append(word)
    return [term for term in terms if term not in ("&", "AND", "and", "&&")]


def _label_clause(object_column, name: str, negate: bool):
    if name not in LABELS:
        raise QueryError(f"unknown label {name!r}")
    clause = exists(select(Label.id).where(Label.object_id == object_column, Label.name == name))
    return not_(clause) if negate else clause


def _range_clause(column, value: str):
    match = _RANGE.fullmatch(value)
    if match:
        low, high = float(match.group(1)), float(match.group(2))
        return and_(column >= low, column <= high)
    try:
        return column == float(value)
    except ValueError:
        raise QueryError(f"bad time or range {value!r}") from None


def _compare_clause(column, operator: str, value: float):
    return {"<": column < value, "<=": column <= value, ">": column > value,
            ">=": column >= value, "=": column == value, "==": column == value}[operator]


def event_filters(text: str | None) -> list:
    """SQL filters of an events query."""
    clauses = []
    for term in _split_terms(text or ""):
        key, sep, value = term.partition(":")
        compare = _COMPARE.fullmatch(term)
        if compare:
            column = getattr(Event, "gpstime" if compare.group(1).lower() != "far" else "far")
            clauses.append(_compare_clause(column, compare.group(2), float(compare.group(3))))
        elif sep and key == "gpstime":
            clauses.append(_range_clause(Event.gpstime, value))
        elif sep and key in ("group", "pipeline", "search"):
            clauses.append(getattr(Event, key).ilike(value))
        elif sep and key == "label":
            clauses.append(_label_clause(Event.graceid, value, False))
        elif sep and key == "superevent":
            clauses.append(Event.superevent_id == value)
        elif sep:
            raise QueryError(f"unknown query key {key!r}")
        elif _RANGE.fullmatch(term):
            clauses.append(_range_clause(Event.gpstime, term))
        elif _ID_RANGE.fullmatch(term):
            match = _ID_RANGE.fullmatch(term)
            clauses.append(and_(Event.id >= int(match.group(2)), Event.id <= int(match.group(4))))
        elif re.fullmatch(r"[GTMEH]\d+", term):
            clauses.append(Event.graceid == term)
        elif term[:1] in "~-" and term[1:] in LABELS:
            clauses.append(_label_clause(Event.graceid, term[1:], True))
        elif term in LABELS:
            clauses.append(_label_clause(Event.graceid, term, False))
        elif term in GROUPS:
            clauses.append(Event.group == term)
        elif term in PIPELINES:
            clauses.append(Event.pipeline == term)
        elif term in SEARCHES:
            clauses.append(Event.search == term)
        else:
            raise QueryError(f"invalid query term {term!r}")
    return clauses


def _category_code(value: str) -> str:
    for code, name in SUPEREVENT_CATEGORIES.items():
        if value.lower() in (code.lower(), name.lower()):
            return code
    raise QueryError(f"unknown superevent category {value!r}")


def superevent_filters(text: str | None) -> list:
    """SQL filters of a superevents query."""
    clauses = []
    for term in _split_terms(text or ""):
        key, sep, value = term.partition(":")
        compare = _COMPARE.fullmatch(term)
        if compare:
            name = compare.group(1).lower()
            column = {"gpstime": Superevent.t_0, "far": None}.get(name, getattr(Superevent, name, None))
            if column is None:
                raise QueryError("far comparisons are not supported for superevents")
            clauses.append(_compare_clause(column, compare.group(2), float(compare.group(3))))
        elif sep and key in ("t_0", "gpstime", "t_start", "t_end"):
            column = Superevent.t_0 if key == "gpstime" else getattr(Superevent, key)
            clauses.append(_range_clause(column, value))
        elif sep and key == "category":
            clauses.append(Superevent.category == _category_code(value))
        elif sep and key == "is_gw":
            clauses.append(Superevent.is_gw.is_(value.lower() in ("true", "1", "yes")))
        elif sep and key == "label":
            clauses.append(_label_clause(Superevent.superevent_id, value, False))
        elif sep and key == "preferred_event":
            match = _ID_RANGE.fullmatch(value)
            if match:
                # compare the numeric part of ids, as GraceDB does for id ranges
                low, high = int(match.group(2)), int(match.group(4))
                clauses.append(Superevent.preferred_event.in_(
                    select(Event.graceid).where(Event.id >= low, Event.id <= high)))
            else:
                clauses.append(Superevent.preferred_event == value)
        elif sep and key in ("id", "superevent_id"):
            clauses.append(Superevent.superevent_id == value)
        elif sep:
            raise QueryError(f"unknown query key {key!r}")
        elif _RANGE.fullmatch(term):
            clauses.append(_range_clause(Superevent.t_0, term))
        elif term[:1] in "~-" and term[1:] in LABELS:
            clauses.append(_label_clause(Superevent.superevent_id, term[1:], True))
        elif term in LABELS:
            clauses.append(_label_clause(Superevent.superevent_id, term, False))
        elif re.fullmatch(r"(S|MS|TS)\d{6}[a-z]+", term):
            clauses.append(Superevent.superevent_id == term)
        elif re.fullmatch(r"[MT]?GW\d{6}(_\d{6})?", term):
            clauses.append(Superevent.gw_id == term)
        else:
            raise QueryError(f"invalid query term {term!r}")
    return clauses
