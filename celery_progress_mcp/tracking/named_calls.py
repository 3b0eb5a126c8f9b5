"""Mutations as data: engine calls known by a name, with arguments JSON can carry.

Every write the tracker queues is a mutation, a function of the session as
the store has it (``store.base.Mutation``), run in the store's transaction.
One that is to outlive its process (the journal, :mod:`.journal`) must be
data: a name, its arguments, and the function found again by the name in
the process that writes it. Two kinds of mutation are data:

* the engine's own calls, as the tracker makes them: a ``functools.partial``
  of an :class:`~celery_progress_mcp.core.engine.Engine` method with keyword
  arguments, named ``engine.<method>``. An update's ETA hook observes this
  process's estimator: it is left out, and the call is written without one;
* a :class:`NamedCall`: a function registered with :func:`named_call` (the
  Celery integration's start, rollup, seal and revoke), bound to an engine
  and to its arguments.

The arguments of each name are one frozen dataclass, which pydantic turns
into JSON and back. Anything else (a function given to ``apply_mutation``,
a sweep's decision, which the next sweep makes again) is not data:
:func:`describe` returns None for it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from types import MethodType
from typing import Any, TypeVar

from pydantic import TypeAdapter

from ..core.engine import Change, Engine
from ..core.models import ProgressSession, SubOperation, SubOperationUpdate
from ..core.states import ProgressState
from ..store.base import Mutation

__all__ = [
    "ENGINE_PREFIX",
    "CallKind",
    "NamedCall",
    "bind",
    "call_kind",
    "describe",
    "named_call",
]

#: How the names of the engine's own calls begin (``engine.update``).
ENGINE_PREFIX = "engine."

#: A registered function: ``function(engine, session, arguments) -> Change``.
CallFunction = Callable[[Engine, ProgressSession, Any], Change]
F = TypeVar("F", bound=CallFunction)


@dataclass(frozen=True, slots=True)
class CallKind:
    """One name: the dataclass of its arguments, their JSON form, and how a call
    of it is made again with an engine."""

    name: str
    arguments: type[Any]
    adapter: TypeAdapter[Any]
    #: The mutation that makes this call with ``engine``.
    bind: Callable[[Engine, Any], Mutation]


_kinds: dict[str, CallKind] = {}
_functions: dict[str, CallFunction] = {}
_lock = threading.Lock()


def _register(kind: CallKind) -> None:
    with _lock:
        _kinds[kind.name] = kind


# -- the engine's own calls ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Update:
    state: ProgressState
    now: datetime
    sub_operation_updates: tuple[SubOperationUpdate, ...] = ()
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AddSubOperations:
    sub_operations: tuple[SubOperation, ...]
    now: datetime


@dataclass(frozen=True, slots=True)
class ChangeSubOperation:
    update: SubOperationUpdate
    now: datetime


@dataclass(frozen=True, slots=True)
class Reason:
    """A pause's or a cancellation's."""

    reason: str
    now: datetime


@dataclass(frozen=True, slots=True)
class Complete:
    result_summary: str | None
    now: datetime


@dataclass(frozen=True, slots=True)
class Fail:
    error_message: str
    error_code: str | None
    now: datetime


@dataclass(frozen=True, slots=True)
class At:
    """A call whose only argument is its time (a resume, a heartbeat)."""

    now: datetime


#: The engine's methods a queued write calls, with the dataclass of their arguments.
_ENGINE_METHODS: dict[str, tuple[Callable[..., Change], type[Any]]] = {
    "update": (Engine.update, Update),
    "add_sub_operations": (Engine.add_sub_operations, AddSubOperations),
    "change_sub_operation": (Engine.change_sub_operation, ChangeSubOperation),
    "pause": (Engine.pause, Reason),
    "resume": (Engine.resume, At),
    "complete": (Engine.complete, Complete),
    "fail": (Engine.fail, Fail),
    "cancel": (Engine.cancel, Reason),
    "heartbeat": (Engine.heartbeat, At),
}
#: Keywords of an engine call that are not data: the ETA hook.
_NOT_DATA = frozenset({"eta"})


def _engine_binder(function: Callable[..., Change]) -> Callable[[Engine, Any], Mutation]:
    def bind_to(engine: Engine, arguments: Any) -> Mutation:
        keywords = {item.name: getattr(arguments, item.name) for item in fields(arguments)}
        return functools.partial(MethodType(function, engine), **keywords)

    return bind_to


def _register_engine_calls() -> None:
    for method, (function, arguments) in _ENGINE_METHODS.items():
        bind_to = _engine_binder(function)
        _register(CallKind(ENGINE_PREFIX + method, arguments, TypeAdapter(arguments), bind_to))


_register_engine_calls()


# -- registered functions ----------------------------------------------------------------


class NamedCall:
    """A mutation that is data: the function registered as ``name``, called with
    ``engine``, the session, and ``arguments`` (its kind's dataclass)."""

    __slots__ = ("_function", "arguments", "engine", "name")

    def __init__(self, name: str, engine: Engine, arguments: Any) -> None:
        kind = _kinds.get(name)
        if kind is None or name not in _functions:
            raise KeyError(f"no function is registered as {name!r}")
        if not isinstance(arguments, kind.arguments):
            raise TypeError(f"{name}: expected {kind.arguments.__name__}, got {arguments!r}")
        self.name = name
        self.engine = engine
        self.arguments = arguments
        self._function = _functions[name]

    def __call__(self, session: ProgressSession) -> Change:
        return self._function(self.engine, session, self.arguments)

    def __repr__(self) -> str:
        return f"NamedCall({self.name!r}, {self.arguments!r})"


def named_call(name: str, arguments: type[Any]) -> Callable[[F], F]:
    """Register ``function(engine, session, arguments) -> Change`` as ``name``;
    ``arguments``: the frozen dataclass of its arguments (pydantic turns it into
    JSON). Calls of it are made with :class:`NamedCall`."""
    if name.startswith(ENGINE_PREFIX):
        raise ValueError(f"{ENGINE_PREFIX}* names the engine's own calls: {name!r}")

    def register(function: F) -> F:
        def bind_to(engine: Engine, values: Any) -> Mutation:
            return NamedCall(name, engine, values)

        with _lock:
            _functions[name] = function
        _register(CallKind(name, arguments, TypeAdapter(arguments), bind_to))
        return function

    return register


# -- mutations as data, and back -------------------------------------------------------------


def call_kind(name: str) -> CallKind | None:
    """The kind registered as ``name``; None if this process does not know it."""
    return _kinds.get(name)


def describe(mutation: Mutation) -> tuple[str, Any] | None:
    """``mutation`` as data: its name and arguments; None if it is not data."""
    if isinstance(mutation, NamedCall):
        return mutation.name, mutation.arguments
    if not isinstance(mutation, functools.partial) or mutation.args:
        return None
    method = mutation.func
    if not isinstance(method, MethodType) or not isinstance(method.__self__, Engine):
        return None
    known = _ENGINE_METHODS.get(method.__func__.__name__)
    if known is None or known[0] is not method.__func__:
        return None
    function, arguments = known
    keywords = {key: value for key, value in mutation.keywords.items() if key not in _NOT_DATA}
    if not keywords.keys() <= {item.name for item in fields(arguments)}:
        return None
    metadata = keywords.get("metadata")
    if isinstance(metadata, Mapping) and not isinstance(metadata, dict):
        keywords["metadata"] = dict(metadata)
    updates = keywords.get("sub_operation_updates")
    if isinstance(updates, Sequence) and not isinstance(updates, tuple):
        keywords["sub_operation_updates"] = tuple(updates)
    try:
        return ENGINE_PREFIX + function.__name__, arguments(**keywords)
    except TypeError:  # a required argument is missing
        return None


def bind(name: str, engine: Engine, arguments: Any) -> Mutation:
    """The mutation ``describe`` gave ``(name, arguments)`` for, made with ``engine``.

    Raises ``KeyError`` if this process does not know ``name``.
    """
    kind = _kinds.get(name)
    if kind is None:
        raise KeyError(f"no call is registered as {name!r}")
    return kind.bind(engine, arguments)
