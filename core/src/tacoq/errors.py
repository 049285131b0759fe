"""Every error TacoQ raises on purpose, in one place.

Each error's message names what was wrong (the field, the task, the plugin, the URL scheme), so a
user can act on one line without reading a traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeadLetterNotFound",
    "HandlerSignatureError",
    "OutputTooLarge",
    "PayloadTooLarge",
    "PluginError",
    "PublishConflict",
    "PublishError",
    "PublishFailed",
    "PublishRefused",
    "RelayError",
    "RelayUnavailable",
    "RequeueRefused",
    "SerializationError",
    "StoreUnavailable",
    "TacoqError",
    "TaskFailed",
    "UnknownMessageKind",
    "UnknownSchemeError",
    "UnknownTaskError",
    "WireFormatError",
]


class TacoqError(Exception):
    """Base class of every error TacoQ raises on purpose."""


class ConfigError(TacoqError):
    """A setting (URL, namespace, option) is missing or invalid."""


class UnknownSchemeError(ConfigError):
    """No installed plugin provides the URL scheme that was asked for."""


class PluginError(TacoqError):
    """A plugin could not be loaded, or two plugins claim the same thing."""


class SerializationError(TacoqError):
    """A value could not be serialized or deserialized (or failed validation)."""


class PayloadTooLarge(SerializationError):
    """A serialized payload is larger than ``max_payload_bytes``."""


class OutputTooLarge(PayloadTooLarge):
    """A handler's serialized output is larger than ``max_payload_bytes``; the task completes
    with this error (type ``OutputTooLarge``) instead of sending the output."""


class HandlerSignatureError(TacoqError):
    """A task handler's signature cannot be used (missing annotations, too many parameters)."""


class UnknownTaskError(TacoqError):
    """A task kind or task reference is not known where it was used."""


class WireFormatError(TacoqError):
    """A message does not follow the wire format (missing header, bad body, unknown version)."""


class UnknownMessageKind(WireFormatError):
    """A well-formed message of a kind (``tacoq-event``) this TacoQ does not know.

    Newer TacoQ versions add message kinds; during a rolling upgrade an older relay or worker
    meets them. Receivers acknowledge and count such a message (logging once per kind) instead of
    dead-lettering it, so an upgrade never fills the dead-letter queue.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(f"unknown event type {kind!r} (a message kind of a newer TacoQ?)")


class PublishError(TacoqError):
    """The broker did not confirm a publish within the bounded wait."""


class RelayError(TacoqError):
    """The relay's HTTP API answered with an error (its JSON ``error`` type and message)."""

    def __init__(self, message: str, *, status: int = 0, error_type: str = "") -> None:
        self.status = status
        self.error_type = error_type
        super().__init__(message)


class RelayUnavailable(RelayError):
    """The relay could not be reached, even after retrying with backoff."""


class DeadLetterNotFound(TacoqError):
    """No dead letter of that id is in the store (never recorded, requeued or deleted)."""


class RequeueRefused(TacoqError):
    """A dead letter cannot be requeued (its body was cut, its origin is unknown, or it was
    dead-lettered again since it was read); the message says which."""


class PublishFailed(TacoqError):
    """A relay's REST publish could not be completed (broker or store); nothing was left
    behind. ``part`` names which: ``broker`` or ``store``."""

    def __init__(self, message: str, *, part: str) -> None:
        self.part = part
        super().__init__(message)


class PublishConflict(TacoqError):
    """A REST publish reused the id of a different task (other task or worker kind)."""


class PublishRefused(TacoqError):
    """A REST publish for a worker kind this relay does not publish to (``worker_kinds``), or
    for a task kind the live workers of its kind did not announce."""


class InputRefused(PublishRefused):
    """A REST publish whose input does not match the task kind's announced contract
    (``--check-input``); ``problems`` are ``(location, message)`` pairs, the location a JSON
    path into the input."""

    def __init__(self, message: str, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__(message)
        self.problems = problems


class StoreUnavailable(TacoqError):
    """The store cannot be reached right now; the caller should back off and retry.

    The relay engine stops acknowledging updates when it sees this error, so nothing that was
    not committed is ever acknowledged.
    """


class TaskFailed(TacoqError):
    """A task completed with an error; carries the remote error's type, message and traceback."""

    def __init__(
        self,
        task_id: object,
        error_type: str,
        message: str,
        traceback: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.error_type = error_type
        self.message = message
        self.traceback = traceback
        super().__init__(f"task {task_id} failed: {error_type}: {message}")
