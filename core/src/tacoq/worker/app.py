"""``WorkerApp`` and ``TaskDef``: declaring the tasks a worker runs.

A handler takes exactly one input parameter, plus optionally a parameter annotated with
:class:`~tacoq.worker.context.TaskContext`. Its input and output types come from its annotations and
choose the serializers (pydantic models, JSON values, ``str``, ``bytes``) once, at decoration.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import socket
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

from tacoq.config import (
    ENV_BROKER_URL,
    require_configured,
    resolve_broker_url,
    resolve_namespace,
)
from tacoq.contracts.runner import WorkerRunRequest
from tacoq.contracts.serializer import Codec
from tacoq.errors import ConfigError, HandlerSignatureError, SerializationError
from tacoq.model.workers import DEFAULT_HEARTBEAT_INTERVAL
from tacoq.plugins import default_registry
from tacoq.worker.context import TaskContext
from tacoq.worker.retry import DEFAULT_RETRY_BACKOFF, DEFAULT_RETRY_BACKOFF_MAX, RetryPolicy
from tacoq.worker.serving import serve_until_signalled

__all__ = ["TaskDef", "WorkerApp", "load_worker_app"]

P = ParamSpec("P")
R = TypeVar("R")

#: Default number of handlers a worker runs at once.
DEFAULT_CONCURRENCY = 32
#: The retry policy of a task declared without retries.
NO_RETRY = RetryPolicy()
#: Default seconds running tasks get to finish after SIGTERM/SIGINT.
DEFAULT_GRACE = 30.0


@dataclass(eq=False)
class TaskDef(Generic[P, R]):
    """A registered handler: what runs for one ``task_kind`` on one ``worker_kind``.

    Calling a ``TaskDef`` calls the handler directly (handy in tests); publish it with
    ``Publisher.publish(taskdef, input)`` to run it on a worker.
    """

    fn: Callable[P, R]
    task_kind: str
    worker_kind: str
    input_type: Any
    output_type: Any
    input_param: str
    context_param: str | None
    is_async: bool
    input_codec: Codec
    output_codec: Codec
    timeout: float | None = None
    #: When and how failed attempts are retried.
    retry: RetryPolicy = NO_RETRY

    @property
    def retries(self) -> int:
        """Extra attempts after the first (``retry.retries``)."""
        return self.retry.retries

    @property
    def retry_on(self) -> tuple[type[BaseException], ...]:
        """Exception types that are retried (``retry.retry_on``)."""
        return self.retry.retry_on

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<TaskDef {self.worker_kind}/{self.task_kind}>"


def _inspect_handler(fn: Callable[..., Any], kind: str) -> tuple[str, Any, str | None, Any]:
    """Find the input parameter, its type, the context parameter and the output type."""
    where = f"handler {kind!r} ({getattr(fn, '__qualname__', fn)!r})"
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise HandlerSignatureError(
            f"{where}: cannot resolve its type annotations: {exc}"
        ) from None
    params = list(inspect.signature(fn).parameters.values())
    input_params = []
    context_param = None
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise HandlerSignatureError(f"{where}: *args and **kwargs are not supported")
        if hints.get(param.name) is TaskContext:
            context_param = param.name
        else:
            input_params.append(param)
    if len(input_params) != 1:
        name = getattr(fn, "__name__", "handler")
        if input_params:
            names = ", ".join(p.name for p in input_params)
            found = f"it has {len(input_params)} ({names}); gather them in one pydantic model"
        else:
            found = "it has none"
        raise HandlerSignatureError(
            f"{where}: a handler takes its input as exactly one input parameter (and may take "
            f"a TaskContext besides), but {found}; for example: "
            f"async def {name}(data: MyInput, ctx: TaskContext) -> MyOutput"
        )
    input_param = input_params[0].name
    if input_param not in hints:
        raise HandlerSignatureError(
            f"{where}: parameter {input_param!r} has no type annotation; annotate it with the "
            "input type (a pydantic model, a JSON type such as dict, str or bytes)"
        )
    if "return" not in hints:
        raise HandlerSignatureError(
            f"{where}: it has no return annotation; annotate the output type "
            "(use -> None when it returns nothing)"
        )
    output_type = hints["return"]
    if output_type is type(None):
        output_type = None
    return input_param, hints[input_param], context_param, output_type


class WorkerApp:
    """A worker of one ``worker_kind`` and the handlers it runs, one per ``task_kind``.

    ``broker`` and ``namespace`` are resolved when the worker starts (CLI option > this
    argument > ``TACOQ_BROKER_URL``/``TACOQ_NAMESPACE`` > default).
    """

    def __init__(
        self,
        worker_kind: str,
        *,
        broker: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        prefetch: int | None = None,
        grace: float = DEFAULT_GRACE,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    ) -> None:
        if not worker_kind:
            raise ValueError("worker_kind must be a non-empty string")
        self.worker_kind = worker_kind
        self.broker = broker
        self.namespace = namespace
        self.name = name or f"{worker_kind}@{socket.gethostname()}:{os.getpid()}"
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.grace = grace
        #: Seconds between two heartbeats on the control channel (docs/workers.md).
        self.heartbeat_interval = heartbeat_interval
        self.tasks: dict[str, TaskDef[..., Any]] = {}

    @overload
    def task(self, fn: Callable[P, R], /) -> TaskDef[P, R]: ...
    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        kind: str | None = None,
        retries: int = 0,
        timeout: float | None = None,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        retry_backoff: float = DEFAULT_RETRY_BACKOFF,
        retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX,
    ) -> Callable[[Callable[P, R]], TaskDef[P, R]]: ...
    def task(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        kind: str | None = None,
        retries: int = 0,
        timeout: float | None = None,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        retry_backoff: float = DEFAULT_RETRY_BACKOFF,
        retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX,
    ) -> TaskDef[P, R] | Callable[[Callable[P, R]], TaskDef[P, R]]:
        """Register a handler; ``kind`` defaults to the function's name.

        ``retries`` extra attempts for exceptions that are instances of ``retry_on``; before
        attempt ``n + 1`` the task waits ``min(retry_backoff_max, retry_backoff * 2**(n-1))``
        seconds, jittered into its upper half (:class:`~tacoq.worker.retry.RetryPolicy`), in the
        broker, not in the worker. ``timeout`` seconds per attempt: an async handler is
        cancelled, a sync one is abandoned (``docs/worker.md``).
        """

        def register(func: Callable[P, R]) -> TaskDef[P, R]:
            task_kind = kind or func.__name__
            if task_kind in self.tasks:
                raise HandlerSignatureError(
                    f"task kind {task_kind!r} is already registered on worker {self.worker_kind!r}"
                )
            policy = RetryPolicy(retries, tuple(retry_on), retry_backoff, retry_backoff_max)
            if timeout is not None and timeout <= 0:
                raise ValueError("timeout must be > 0 seconds")
            input_param, input_type, context_param, output_type = _inspect_handler(func, task_kind)
            registry = default_registry()
            try:
                input_codec = registry.codec_for(input_type, what=f"input of task {task_kind!r}")
                output_codec = registry.codec_for(output_type, what=f"output of task {task_kind!r}")
            except SerializationError as exc:
                raise HandlerSignatureError(f"handler {task_kind!r}: {exc}") from None
            taskdef: TaskDef[P, R] = TaskDef(
                fn=func,
                task_kind=task_kind,
                worker_kind=self.worker_kind,
                input_type=input_type,
                output_type=output_type,
                input_param=input_param,
                context_param=context_param,
                is_async=inspect.iscoroutinefunction(func),
                input_codec=input_codec,
                output_codec=output_codec,
                timeout=timeout,
                retry=policy,
            )
            self.tasks[task_kind] = taskdef
            return taskdef

        if fn is not None:
            return register(fn)
        return register

    async def serve(
        self,
        stop: asyncio.Event,
        *,
        broker_url: str | None = None,
        namespace: str | None = None,
        concurrency: int | None = None,
        prefetch: int | None = None,
        name: str | None = None,
        grace: float | None = None,
        heartbeat_interval: float | None = None,
        abort: asyncio.Event | None = None,
        refuse_in_process: bool = False,
    ) -> None:
        """Consume and run tasks until ``stop`` is set, then shut down gracefully and return.

        Running tasks get ``grace`` seconds to finish; setting ``abort`` cuts that short.
        Options left ``None`` fall back to the app's settings.
        """
        from tacoq.plugins import get_plugin_host, require_scheme_kind
        from tacoq.worker.runtime import WorkerRuntime

        if refuse_in_process:
            require_configured(
                broker_url or self.broker,
                ENV_BROKER_URL,
                what="broker",
                option="--broker",
                command="`tacoq worker`",
            )
        url = resolve_broker_url(broker_url or self.broker)
        ns = resolve_namespace(namespace or self.namespace)
        broker = get_plugin_host().create_broker(url, namespace=ns)
        if refuse_in_process:
            require_scheme_kind(url, in_process=broker.in_process, command="`tacoq worker`")
        runtime = WorkerRuntime(
            self,
            broker,
            concurrency=concurrency or self.concurrency,
            prefetch=prefetch or self.prefetch,
            name=name or self.name,
            grace=self.grace if grace is None else grace,
            heartbeat_interval=heartbeat_interval or self.heartbeat_interval,
        )
        await runtime.run(stop, abort)

    def run(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C); for scripts."""
        asyncio.run(
            serve_until_signalled(self, WorkerRunRequest(app_ref=""), refuse_in_process=False)
        )


def load_worker_app(app_ref: str) -> WorkerApp:
    """Import ``MODULE:ATTR`` and check it is a :class:`~tacoq.worker.WorkerApp`."""
    module_name, sep, attr = app_ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{app_ref!r} is not MODULE:ATTR (for example myapp.tasks:worker)")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`, find modules in the current directory
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"cannot import module {module_name!r}: {exc}") from None
        raise ConfigError(f"importing {module_name!r} failed: {exc}") from exc
    try:
        app = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(app, WorkerApp):
        raise ConfigError(f"{app_ref} is a {type(app).__name__}, not a tacoq.WorkerApp")
    return app
