"""The plugin contract: every hook a TacoQ plugin can implement.

Hooks are synchronous and *compose* things: they return factories and objects, whose own
methods are async. (pluggy has no async hooks.) Mark implementations with
:data:`tacoq.hookimpl` and register the module or object under the ``tacoq`` entry-point
group. Hook modules must stay import-light: import client libraries inside the factories they
return, never at module level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from tacoq.contracts.broker import BrokerFactory
    from tacoq.contracts.lifecycle import HandlerMiddleware, TaskListener
    from tacoq.contracts.runner import WorkerRunner, WorkerRunRequest
    from tacoq.contracts.serializer import Serializer
    from tacoq.contracts.store import StoreFactory

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

#: The pluggy project name, which is also the entry-point group plugins register under.
PROJECT_NAME = "tacoq"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def tacoq_broker_schemes() -> Mapping[str, BrokerFactory]:
    """Return the broker URL schemes this plugin serves, as ``{scheme: factory}``.

    Called when TacoQ needs a broker for a URL, and by ``tacoq plugins``. Every plugin's answer
    is collected; a scheme claimed by two plugins is an error naming both. A factory is called
    as ``factory(url, namespace=...)`` and must import its client library only then.
    """


@hookspec
def tacoq_store_schemes() -> Mapping[str, StoreFactory]:
    """Return the store URL schemes this plugin serves, as ``{scheme: factory}``.

    Same rules as :func:`tacoq_broker_schemes`: all answers are collected, a scheme claimed
    twice is an error naming both plugins, and the factory imports heavy clients lazily.
    """


@hookspec
def tacoq_serializers() -> Sequence[Serializer]:
    """Return serializers (see :class:`tacoq.serialization.Serializer`).

    Called once when the serializer registry is built. Serializers are tried in hook-call
    order (later-registered plugins first; the built-ins are ``trylast``), and the first one
    that handles a type is used for it.
    """


@hookspec(firstresult=True)
def tacoq_worker_runner(request: WorkerRunRequest) -> WorkerRunner | None:
    """Return a runner for ``tacoq worker``, or ``None`` to decline.

    ``firstresult``: the first non-``None`` answer runs the worker. The built-in runner
    (``trylast``) declines when ``request.reload`` is set; the ``tacoq-hotreload`` plugin
    answers it.
    """


@hookspec
def tacoq_task_listener() -> TaskListener | None:
    """Return an object notified of every task lifecycle event (metrics, tracing), or ``None``.

    Called once per plugin host (once per process, when it first needs its listeners); its
    ``on_task_event`` is then called for each event of every worker, publisher and relay in
    that process, through the event bus (:mod:`tacoq.bus`): an exception it raises is logged
    with the plugin's name and ignored.
    """


@hookspec
def tacoq_handler_middleware() -> HandlerMiddleware | None:
    """Return a middleware wrapping every handler call, or ``None``.

    Called once when a worker starts. Middlewares nest in hook-call order: the first one
    returned is the outermost.
    """


@hookspec
def tacoq_cli_group() -> tuple[str, Any] | None:
    """Return ``(name, typer.Typer)`` to mount as ``tacoq NAME ...``, or ``None``.

    Import typer inside the hook, not at module level. The CLI refuses a name that collides
    with a core command or with another plugin's group, naming both.
    """
