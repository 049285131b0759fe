"""``tacoq relay``: the update consumer, the HTTP API and the cleanup job in one process.

Each part can be switched off (``--no-consumer``, ``--no-http``, ``--no-cleanup``, or
``TACOQ_RELAY_CONSUMER=0`` etc.); every option has a ``TACOQ_RELAY_*`` environment variable
(shown by ``--help``). Like ``tacoq worker``, it refuses in-process backends (``memory://``).
SIGINT and SIGTERM stop it cleanly, with exit code 0.

Options are visible to every user of the machine (``ps``): the token is best given in the
environment (``TACOQ_RELAY_TOKEN``) or a file (``--token-file``); ``--token`` on the command
line works, with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from tacoq_cli.options import (
    BrokerOption,
    LogFormat,
    LogFormatOption,
    LogLevel,
    LogLevelOption,
    NamespaceOption,
    StoreOption,
)

if TYPE_CHECKING:
    from tacoq.relay.service import RelayService

__all__ = ["parse_worker_kinds", "read_token_file", "register", "relay", "run_relay"]

log = logging.getLogger("tacoq.relay")

_COMMAND = "`tacoq relay`"
#: The largest token file read (a token is one short line).
_TOKEN_FILE_LIMIT = 64 * 1024


def relay(
    ctx: typer.Context,
    broker: BrokerOption = None,
    store: StoreOption = None,
    namespace: NamespaceOption = None,
    host: Annotated[
        str,
        typer.Option(
            envvar="TACOQ_RELAY_HOST", metavar="ADDRESS", help="Address the HTTP API binds."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, envvar="TACOQ_RELAY_PORT", metavar="PORT", help="Port (0: any free)."
        ),
    ] = 8080,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="TACOQ_RELAY_BATCH_SIZE",
            metavar="N",
            help="Most updates per store batch.",
        ),
    ] = 1000,
    max_batch_wait: Annotated[
        float,
        typer.Option(
            min=0,
            envvar="TACOQ_RELAY_MAX_BATCH_WAIT",
            metavar="SECONDS",
            help="Upper bound (s) on gathering a batch; a batch never waits to fill.",
        ),
    ] = 0.05,
    assignment_linger: Annotated[
        float,
        typer.Option(
            min=0,
            envvar="TACOQ_RELAY_ASSIGNMENT_LINGER",
            metavar="SECONDS",
            help="Seconds a batch of only assignment copies waits for more (0: never).",
        ),
    ] = 0.005,
    cleanup_interval: Annotated[
        float,
        typer.Option(
            min=0.001,
            envvar="TACOQ_RELAY_CLEANUP_INTERVAL",
            metavar="SECONDS",
            help="Seconds between cleanups of expired tasks.",
        ),
    ] = 60.0,
    default_ttl: Annotated[
        int,
        typer.Option(
            min=0,
            envvar="TACOQ_RELAY_DEFAULT_TTL",
            metavar="SECONDS",
            help="ttl (s) of REST publishes that give none.",
        ),
    ] = 7 * 24 * 3600,
    consumer: Annotated[
        bool,
        typer.Option(
            "--consumer/--no-consumer",
            envvar="TACOQ_RELAY_CONSUMER",
            help="Consume updates into the store.",
        ),
    ] = True,
    http: Annotated[
        bool,
        typer.Option("--http/--no-http", envvar="TACOQ_RELAY_HTTP", help="Serve the HTTP API."),
    ] = True,
    cleanup: Annotated[
        bool,
        typer.Option(
            "--cleanup/--no-cleanup", envvar="TACOQ_RELAY_CLEANUP", help="Delete expired tasks."
        ),
    ] = True,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="TACOQ_RELAY_TOKEN",
            metavar="TOKEN",
            help="Bearer token required by every route but /health/live and /health/ready. "
            "An option is visible in ps: prefer TACOQ_RELAY_TOKEN or --token-file.",
            show_default=False,
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            envvar="TACOQ_RELAY_TOKEN_FILE",
            metavar="PATH",
            exists=True,
            dir_okay=False,
            help="Read the bearer token from this file (one line; not visible in ps).",
            show_default=False,
        ),
    ] = None,
    public_docs: Annotated[
        bool,
        typer.Option(
            "--public-docs/--no-public-docs",
            envvar="TACOQ_RELAY_PUBLIC_DOCS",
            help="Serve /docs and /openapi.json without the token.",
        ),
    ] = False,
    max_wait: Annotated[
        float,
        typer.Option(
            min=0,
            envvar="TACOQ_RELAY_MAX_WAIT",
            metavar="SECONDS",
            help="Longest single long-poll (s).",
        ),
    ] = 60.0,
    header_timeout: Annotated[
        float,
        typer.Option(
            min=0.001,
            envvar="TACOQ_RELAY_HEADER_TIMEOUT",
            metavar="SECONDS",
            help="Seconds a request's line and headers may take to arrive (then 408).",
        ),
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(
            min=0.001,
            envvar="TACOQ_RELAY_BODY_TIMEOUT",
            metavar="SECONDS",
            help="Seconds a request's body may take to arrive after its headers (then 408).",
        ),
    ] = 30.0,
    worker_kinds: Annotated[
        str | None,
        typer.Option(
            envvar="TACOQ_RELAY_WORKER_KINDS",
            metavar="KIND,KIND",
            help="The only worker kinds POST /tasks may name (comma-separated); others are 422. "
            "A public relay should set it: each new kind is a durable queue on the broker. "
            "'announced': only the worker and task kinds live workers announced.",
            show_default=False,
        ),
    ] = None,
    check_input: Annotated[
        bool,
        typer.Option(
            "--check-input",
            envvar="TACOQ_RELAY_CHECK_INPUT",
            help="POST /tasks checks the input against the JSON Schema the live workers "
            "announced for its task kind (422 with the field's path) before publishing.",
        ),
    ] = False,
    log_level: LogLevelOption = LogLevel.INFO,
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Run the relay until SIGINT or SIGTERM: consume updates, serve HTTP, clean up.

    With --log-level debug every HTTP request is logged too (tacoq.relay.access).

    Examples:

    \b
      tacoq relay --broker amqp://mq/ --store postgresql://db/
      tacoq relay --token-file /run/token --port 9000
      tacoq relay --no-http -l debug --log-format json
    """
    from tacoq.errors import ConfigError
    from tacoq_cli.logs import configure_logging

    configure_logging(log_level, log_format, verbose=True)
    if token and token_file is not None:
        raise ConfigError("give --token or --token-file (or TACOQ_RELAY_TOKEN_FILE), not both")
    if token_file is not None:
        token = read_token_file(token_file)
    elif token and _given_on_the_command_line(ctx, "token"):
        from tacoq_cli.errors import print_warning

        print_warning(
            "--token on the command line is visible to every user of this machine (ps); "
            "pass it in TACOQ_RELAY_TOKEN or a file (--token-file)"
        )
    run_relay(
        broker=broker,
        store=store,
        namespace=namespace,
        host=host,
        port=port,
        consume=consumer,
        http=http,
        cleanup=cleanup,
        batch_size=batch_size,
        max_batch_wait=max_batch_wait,
        assignment_linger=assignment_linger,
        cleanup_interval=cleanup_interval,
        default_ttl=default_ttl,
        token=token,
        public_docs=public_docs,
        max_wait=max_wait,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        worker_kinds=None if worker_kinds is None else parse_worker_kinds(worker_kinds),
        check_input=check_input,
    )


def parse_worker_kinds(text: str) -> list[str] | Literal["announced"]:
    """The kinds of ``--worker-kinds a,b`` (spaces around each are ignored), or ``announced``;
    a ConfigError for an empty entry or a kind no task could have."""
    from tacoq.errors import ConfigError
    from tacoq.relay.service import ANNOUNCED, check_worker_kinds

    if text.strip() == ANNOUNCED:
        return "announced"

    kinds = [kind.strip() for kind in text.split(",")]
    if not text.strip() or any(not kind for kind in kinds):
        raise ConfigError(
            f"--worker-kinds: {text!r} has an empty kind; give kinds separated by commas, "
            "such as images,mail"
        )
    return sorted(check_worker_kinds(kinds))


def _given_on_the_command_line(ctx: typer.Context, name: str) -> bool:
    # By name: typer's context may use its own copy of click's ParameterSource enum.
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def read_token_file(path: Path) -> str:
    """The token held by ``path``: its one line, without surrounding whitespace; a one-line
    ConfigError when the file cannot be read, is empty or holds more than one line."""
    from tacoq.errors import ConfigError

    try:
        with path.open("rb") as file:
            data = file.read(_TOKEN_FILE_LIMIT + 1)
    except OSError as exc:
        raise ConfigError(f"--token-file: cannot read {str(path)!r}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"--token-file: {str(path)!r} is not UTF-8 text") from None
    if len(data) > _TOKEN_FILE_LIMIT or "\n" in text or "\r" in text:
        raise ConfigError(f"--token-file: {str(path)!r} must hold the token on one line")
    if not text:
        raise ConfigError(f"--token-file: {str(path)!r} is empty")
    return text


def run_relay(
    *, broker: str | None, store: str | None, namespace: str | None, **options: Any
) -> None:
    """Check the URLs, then serve until a signal; the heavy modules are imported only here."""
    import asyncio

    from tacoq.config import (
        ENV_BROKER_URL,
        ENV_STORE_URL,
        require_configured,
        resolve_broker_url,
        resolve_namespace,
        resolve_store_url,
    )
    from tacoq.plugins import get_plugin_host, require_scheme_kind
    from tacoq.relay.service import RelayService

    ns = resolve_namespace(namespace)
    require_configured(store, ENV_STORE_URL, what="store", option="--store", command=_COMMAND)
    if options["consume"] or options["http"]:
        require_configured(
            broker, ENV_BROKER_URL, what="broker", option="--broker", command=_COMMAND
        )
    broker_url, store_url = resolve_broker_url(broker), resolve_store_url(store)
    host = get_plugin_host()
    # Probes are made, never connected: a refused URL fails before anything starts.
    require_scheme_kind(
        store_url,
        in_process=host.create_store(store_url, namespace=ns).in_process,
        command=_COMMAND,
    )
    if options["consume"] or options["http"]:
        probe = host.create_broker(broker_url, namespace=ns)
        require_scheme_kind(broker_url, in_process=probe.in_process, command=_COMMAND)
    service = RelayService(broker_url, store_url, namespace=ns, **options)
    asyncio.run(_serve(service))
    log.info("relay stopped")


async def _serve(service: RelayService) -> None:
    import asyncio
    import signal

    from tacoq.config import redact_url

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        job = asyncio.create_task(service.run(stop))
        ready = asyncio.ensure_future(service.ready.wait())
        await asyncio.wait([job, ready], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if service.ready.is_set():
            parts = [
                f"consumer {'on' if service.engine.consume_enabled else 'off'}",
                f"cleanup {'on' if service.engine.cleanup is not None else 'off'}",
                f"token {'on' if service.token else 'off'}",
            ]
            where = f"HTTP on {service.url}" if service.http_enabled else "HTTP off"
            log.info(
                "relay ready: %s; %s; broker %s, store %s, namespace %s",
                where,
                ", ".join(parts),
                redact_url(service.broker.url),
                redact_url(service.store.url),
                service.store.namespace,
            )
        await job
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def register(app: typer.Typer) -> None:
    """Add ``tacoq relay`` to ``app``."""
    app.command("relay")(relay)
