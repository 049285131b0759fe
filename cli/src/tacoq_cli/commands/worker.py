"""``tacoq worker MODULE:ATTR``: run a worker app with the runner a plugin provides.

The built-in runner serves in this process; ``--reload`` is answered by the
``tacoq-hotreload`` plugin. Options left out fall back to the app's own settings, then to the
environment (``TACOQ_BROKER_URL``, ``TACOQ_NAMESPACE``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from tacoq.errors import ConfigError
from tacoq_cli.logs import configure_logging
from tacoq_cli.options import (
    BrokerOption,
    ConcurrencyOption,
    LogFormat,
    LogFormatOption,
    LogLevel,
    LogLevelOption,
    NamespaceOption,
)

if TYPE_CHECKING:
    from tacoq.contracts.runner import WorkerRunner, WorkerRunRequest
    from tacoq.plugins import PluginHost

__all__ = ["HOTRELOAD_DISTRIBUTION", "register", "worker"]

#: The distribution that answers ``--reload``.
HOTRELOAD_DISTRIBUTION = "tacoq-hotreload"
_COMMAND = "`tacoq worker`"


def worker(
    app_ref: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:ATTR", help="The tacoq.WorkerApp to run, e.g. myapp.tasks:worker."
        ),
    ],
    concurrency: ConcurrencyOption = None,
    prefetch: Annotated[
        int | None,
        typer.Option(
            envvar="TACOQ_PREFETCH",
            min=1,
            metavar="N",
            help="Unacknowledged tasks held (default: the concurrency).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            envvar="TACOQ_WORKER_NAME",
            metavar="NAME",
            help="Worker name recorded as executed_by (default: generated).",
        ),
    ] = None,
    grace: Annotated[
        float | None,
        typer.Option(
            envvar="TACOQ_GRACE",
            min=0,
            metavar="SECONDS",
            help="Seconds running tasks get to finish after SIGTERM/SIGINT (default: 30).",
        ),
    ] = None,
    heartbeat_interval: Annotated[
        float | None,
        typer.Option(
            envvar="TACOQ_HEARTBEAT_INTERVAL",
            min=0.1,
            max=3600,
            metavar="SECONDS",
            help="Seconds between two heartbeats to the relay; a worker missing three has "
            "left (default: 5).",
        ),
    ] = None,
    broker: BrokerOption = None,
    namespace: NamespaceOption = None,
    reload: Annotated[
        bool,
        typer.Option(
            "--reload",
            envvar="TACOQ_RELOAD",
            help=f"Restart when source files change (needs {HOTRELOAD_DISTRIBUTION}).",
        ),
    ] = False,
    reload_dirs: Annotated[
        list[str] | None,
        typer.Option(
            "--reload-dir",
            envvar="TACOQ_RELOAD_DIRS",
            help="A directory to watch with --reload (repeatable; the variable: separated by "
            "spaces).",
            metavar="DIR",
        ),
    ] = None,
    log_level: LogLevelOption = LogLevel.INFO,
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Run a worker until SIGINT or SIGTERM, then drain and exit.

    The first signal stops taking tasks, hands held ones back to the queue, lets running ones
    finish within --grace seconds and exits 0; a second signal exits at once.

    Examples:

    \b
      tacoq worker myapp.tasks:worker --broker amqp://mq/
      tacoq worker myapp.tasks:worker -c 16 --grace 60
      tacoq worker myapp.tasks:worker --reload -l debug
    """
    from tacoq.contracts.runner import WorkerRunRequest
    from tacoq.plugins import get_plugin_host

    configure_logging(log_level, log_format, verbose=True)
    if reload_dirs and not reload:
        raise ConfigError("--reload-dir only makes sense together with --reload")
    host = get_plugin_host()
    if namespace is not None:
        from tacoq.config import resolve_namespace

        namespace = resolve_namespace(namespace)
    if broker is not None:
        check_broker_url(host, broker, namespace)
    request = WorkerRunRequest(
        app_ref=app_ref,
        broker_url=broker,
        namespace=namespace,
        concurrency=concurrency,
        prefetch=prefetch,
        name=name,
        grace=grace,
        heartbeat_interval=heartbeat_interval,
        reload=reload,
        reload_dirs=tuple(reload_dirs or ()),
        log_level=log_level.value,
        log_format=log_format.value,
    )
    runner = find_runner(host, request)
    sys.exit(runner.run(request))


def check_broker_url(host: PluginHost, url: str, namespace: str | None) -> None:
    """Fail fast, before the app is imported, on a ``--broker`` this command cannot use.

    Raises :class:`~tacoq.errors.UnknownSchemeError` (listing the installed schemes) when no
    plugin serves the scheme, and :class:`~tacoq.errors.ConfigError` for an in-process broker
    like ``memory://``: the worker is a process of its own, so nobody else could reach it. The
    broker object made for the check is never connected.
    """
    from tacoq.config import DEFAULT_NAMESPACE
    from tacoq.plugins import require_scheme_kind

    probe = host.create_broker(url, namespace=namespace or DEFAULT_NAMESPACE)
    require_scheme_kind(url, in_process=probe.in_process, command=_COMMAND)


def find_runner(host: PluginHost, request: WorkerRunRequest) -> WorkerRunner:
    """The runner a plugin offers for ``request``; a clear error when none does."""
    from tacoq.plugins import install_hint

    runner = host.worker_runner(request)
    if runner is not None:
        return runner
    if request.reload:
        for failure in host.failures:
            if failure.distribution == HOTRELOAD_DISTRIBUTION:
                raise ConfigError(
                    f"--reload needs the {HOTRELOAD_DISTRIBUTION} plugin, which is installed "
                    f"but failed to load ({failure.error}); {failure.remedy}"
                )
        raise ConfigError(
            f"--reload needs the {HOTRELOAD_DISTRIBUTION} plugin, which is not installed: "
            f"{install_hint(HOTRELOAD_DISTRIBUTION)}"
        )
    raise ConfigError(
        "no installed plugin offers a worker runner (is tacoq.builtin.runner blocked?)"
    )


def register(app: typer.Typer) -> None:
    """Add ``tacoq worker`` to ``app``."""
    app.command("worker")(worker)
