"""Calling one handler: its arguments, its context, the middlewares around it, its timeout.

Async handlers run on the worker's event loop. Sync handlers run in the worker's own
:class:`~tacoq.worker.handler_pool.DaemonThreadPool`, so a sleeping or blocked sync handler never
stalls the loop. A timeout is reported as timed out at its deadline, whatever the handler does: an
async handler is cancelled then, and one that swallows the cancellation and keeps going is still a
timeout (its eventual result is discarded). A thread cannot be cancelled: a sync handler that runs
past its timeout is reported at once too. In both cases :attr:`HandlerCall.abandoned` lets the
caller keep the handler's slot until it really ends.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tacoq.contracts.lifecycle import HandlerMiddleware
from tacoq.model.task import TaskEvent
from tacoq.worker.context import TaskContext
from tacoq.worker.handler_pool import DaemonThreadPool

if TYPE_CHECKING:
    from tacoq.publishing.publisher import Publisher
    from tacoq.worker.app import TaskDef

__all__ = ["CANCEL_GRACE", "HandlerCall", "HandlerTimeout"]

#: Seconds a timed-out async handler gets to end after its cancellation before it is left
#: running (abandoned) and the timeout is reported anyway.
CANCEL_GRACE = 0.1


class HandlerTimeout(TimeoutError):
    """The handler ran past its task's ``timeout`` (reported as ``TimeoutError``)."""


class HandlerCall:
    """One call of one handler for one attempt."""

    def __init__(
        self,
        taskdef: TaskDef[..., Any],
        assignment: TaskEvent,
        *,
        worker_name: str,
        publisher: Publisher,
        middlewares: list[HandlerMiddleware],
        pool: DaemonThreadPool | None,
    ) -> None:
        self.taskdef = taskdef
        self.assignment = assignment
        self.worker_name = worker_name
        self.publisher = publisher
        self.middlewares = middlewares
        self.pool = pool
        #: The thread's future of a sync handler still running after its timeout, else None.
        self.abandoned: asyncio.Future[Any] | None = None
        self._thread_result: asyncio.Future[Any] | None = None

    def context(self, started_at: datetime) -> TaskContext:
        """The :class:`TaskContext` of this attempt."""
        taskdef, assignment = self.taskdef, self.assignment
        return TaskContext(
            id=assignment.id,
            task_kind=assignment.task_kind,
            worker_kind=assignment.worker_kind,
            attempt=assignment.attempt,
            priority=assignment.priority,
            worker_name=self.worker_name,
            deadline=started_at + timedelta(seconds=taskdef.timeout) if taskdef.timeout else None,
            logger=logging.getLogger(f"tacoq.task.{assignment.task_kind}"),
            publisher=self.publisher,
        )

    async def __call__(self, value: Any, started_at: datetime) -> Any:
        """Run the handler on ``value``; raises what it raises, or :class:`HandlerTimeout`."""
        taskdef = self.taskdef
        kwargs: dict[str, Any] = {taskdef.input_param: value}
        if taskdef.is_async and taskdef.timeout is None and not self.middlewares:
            if taskdef.context_param is not None:
                kwargs[taskdef.context_param] = self.context(started_at)
            return await taskdef.fn(**kwargs)  # the common case, without the wrapping below
        ctx = None
        if taskdef.context_param is not None or self.middlewares:
            ctx = self.context(started_at)
            if taskdef.context_param is not None:
                kwargs[taskdef.context_param] = ctx

        async def call() -> Any:
            if taskdef.is_async:
                return await taskdef.fn(**kwargs)
            assert self.pool is not None
            future = self.pool.submit(functools.partial(taskdef.fn, **kwargs))
            self._thread_result = future
            # shield: a timeout or a stop cancels our wait, never the (uncancellable) thread
            return await asyncio.shield(future)

        handler: Callable[[], Awaitable[Any]] = call
        for middleware in reversed(self.middlewares):
            assert ctx is not None
            handler = functools.partial(middleware, ctx, handler)
        if taskdef.timeout is None:
            return await handler()
        # The handler runs as a task of its own, so its deadline does not depend on it: a
        # handler that swallows its cancellation cannot turn a timeout into a late success.
        running = asyncio.ensure_future(handler())
        try:
            done, _ = await asyncio.wait((running,), timeout=taskdef.timeout)
        except asyncio.CancelledError:  # the worker stops: the handler stops with it
            running.cancel()
            raise
        if done:
            return running.result()
        running.cancel()
        # A well-behaved handler ends within a few loop turns of its cancellation.
        await asyncio.wait((running,), timeout=CANCEL_GRACE)
        thread = self._thread_result
        if thread is not None and not thread.done():
            self.abandoned = thread  # a sync handler's thread is still running
            thread.add_done_callback(_consume_outcome)
        elif not running.done():
            self.abandoned = running  # an async handler that ignored its cancellation
        if running.done():
            _consume_outcome(running)
        else:
            running.add_done_callback(_consume_outcome)
        raise HandlerTimeout(f"task exceeded its timeout of {taskdef.timeout}s")


def _consume_outcome(future: asyncio.Future[Any]) -> None:
    """Retrieve a discarded result so asyncio never warns that an exception went unseen."""
    if not future.cancelled():
        future.exception()
