"""The task model: what a task is and how it travels, with no I/O and no plugins.

- :mod:`~tacoq.model.task`: ``Task``, ``TaskEvent``, ``Phase``, ``TaskStatus``, ``Payload``,
  ``ErrorInfo``;
- :mod:`~tacoq.model.options`: the task options, declared once (``PublishOptions``,
  ``TaskOptions``);
- :mod:`~tacoq.model.merge`: the one merge rule that folds events into a task;
- :mod:`~tacoq.model.wire`: the wire format (``Envelope``, the ``assign`` and ``updates``
  messages);
- :mod:`~tacoq.model.strict_json`: what JSON may carry (depth, NaN and infinities).

May import: :mod:`tacoq.errors` only (and the standard library, pydantic-core).
"""
