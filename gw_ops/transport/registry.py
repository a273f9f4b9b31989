"""Registry of message handlers: what ``@lvalert.handler`` and ``@gcn.handler`` record.

A handler is a plain function of the domain library.  The registry keeps, for each
handler, the messages it wants (LVAlert nodes or GCN notice types) and the Airflow task
settings its lane should run with (pool, queue, priority_weight, ...).  ``dags/``
declares one handler DAG per registered function from this registry, so adding a
handler is one decorator and no DAG code.

Handler modules are listed in :data:`HANDLER_MODULES`; importing them fills the
registry.  They must stay light at import time (no ligo.skymap, astropy, healpy at
module level) because the DAG processor imports them when it parses ``dags/``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

#: Modules whose import registers the pipeline's handlers (light imports only).
HANDLER_MODULES: tuple[str, ...] = (
    "gw_ops.handlers.superevents",
    "gw_ops.handlers.external_triggers",
    "gw_ops.handlers.orchestrator",
    "gw_ops.handlers.kafka_notices",
)

#: Task settings a handler may give: passed to the handler DAG's task.
TASK_KWARGS = frozenset({"pool", "queue", "priority_weight", "retries", "execution_timeout",
                         "sort_key", "max_active_runs", "enabled_setting", "linger", "concurrent"})


@dataclass(frozen=True)
class HandlerSpec:
    """One registered handler.

    Attributes
    ----------
    kind : str
        ``"lvalert"`` or ``"gcn"``.
    keys : tuple of str
        LVAlert node names, or GCN notice type names (``gcn.NoticeType`` member names).
    func : callable
        ``func(message: dict)`` for LVAlert (the message JSON with an added ``"node"``
        key); ``func(payload: bytes, root: lxml.etree._Element)`` for GCN.
    task_kwargs : dict
        Airflow task settings of the handler's lane (see :data:`TASK_KWARGS`).
        ``sort_key`` (a function of one decoded LVAlert message dict) orders each drained
        batch; ties keep arrival order.  ``enabled_setting`` names a setting (a boolean, or
        a list that is on when not empty):
        while it is false the handler has no lane at all (no DAG, no consumer group), so
        no DAG exists that could only do nothing.  ``linger=True`` makes the lane's task
        wait up to the setting ``lane_linger_s`` for more messages once it has run dry
        (lanes on the alert path: the candidate's next message then needs no task start).
        ``concurrent=True`` lets the lane run as many drains at once as its pool has slots
        (``max_active_runs``), each taking one message at a time (``claim_one`` of
        :func:`gw_ops.transport.streams.drain`): several workers localize at once.
    """

    kind: str
    keys: tuple[str, ...]
    func: Callable[..., Any]
    task_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Dotted path of the handler function, e.g. ``gw_ops.handlers.superevents.handle``."""
        return f"{self.func.__module__}.{self.func.__qualname__}"

    @property
    def dag_id(self) -> str:
        """Id of the handler DAG (also the Redis consumer-group name)."""
        # The module's last name only: DAG ids and consumer groups stay the same when a
        # handler module moves between packages (Redis groups outlive a deployment).
        module = self.func.__module__.rsplit(".", 1)[-1]
        return f"{self.kind}_{module}_{self.func.__name__}"


_REGISTRY: dict[str, HandlerSpec] = {}


def register(kind: str, keys: tuple[str, ...], task_kwargs: dict[str, Any]) -> Callable:
    """Decorator factory used by :func:`gw_ops.transport.lvalert.handler` and :func:`gw_ops.transport.gcn_notices.handler`."""
    unknown = set(task_kwargs) - TASK_KWARGS
    if unknown:
        raise TypeError(f"unknown handler task settings: {sorted(unknown)}")
    if not keys:
        raise TypeError("a handler needs at least one node or notice type")

    def decorate(func: Callable) -> Callable:
        spec = HandlerSpec(kind=kind, keys=tuple(keys), func=func, task_kwargs=dict(task_kwargs))
        _REGISTRY[spec.name] = spec  # re-import of the same module replaces, never duplicates
        func.handler_spec = spec
        return func

    return decorate


def load_handlers(modules: tuple[str, ...] | None = None, settings=None) -> list[HandlerSpec]:
    """Import the handler modules and return their registered handlers, sorted by name.

    By default the modules are :data:`HANDLER_MODULES` plus the setting
    ``extra_handler_modules``.  Only handlers defined in those modules count: what else
    this process happened to import (a test module that imports the probe handlers, say)
    must not change which lanes, consumer groups or Kafka topics exist, or two processes
    with the same settings would disagree.  Handlers whose ``enabled_setting`` is false
    in the settings are left out.

    Parameters
    ----------
    modules : tuple of str, optional
    settings : Settings, optional
        Default: :func:`gw_ops.config.get_settings`.
    """
    from gw_ops.config import get_settings

    settings = settings or get_settings()
    if modules is None:
        modules = HANDLER_MODULES + settings.extra_handler_modules
    for module in modules:
        importlib.import_module(module)
    wanted = set(modules)
    return sorted((spec for spec in _REGISTRY.values()
                   if spec.func.__module__ in wanted and is_enabled(spec, settings)),
                  key=lambda spec: spec.name)


def is_enabled(spec: HandlerSpec, settings) -> bool:
    """Whether the handler has a lane under ``settings`` (its ``enabled_setting`` is true)."""
    name = spec.task_kwargs.get("enabled_setting")
    return True if name is None else bool(getattr(settings, name))


def handlers_for(kind: str, key: str) -> list[HandlerSpec]:
    """Registered handlers of one LVAlert node or GCN notice type (already imported)."""
    return [spec for spec in _REGISTRY.values() if spec.kind == kind and key in spec.keys]


def get_handler(name: str) -> HandlerSpec:
    """The handler registered under a dotted name, importing its module if needed."""
    if name not in _REGISTRY:
        importlib.import_module(name.rsplit(".", 1)[0])
    return _REGISTRY[name]
