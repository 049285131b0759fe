"""Publishing tasks: ``Publisher`` (async) and ``SyncPublisher``, and direct replies.

- :mod:`~tacoq.publishing.kernel`: the submission kernel, the one function every publishing
  surface builds its assignment with;
- :mod:`~tacoq.publishing.publisher`: the publishers;
- :mod:`~tacoq.publishing.replies`: a publisher's reply queue and the calls waiting on it.

May import: :mod:`tacoq.plugins`, :mod:`tacoq.bus`, :mod:`tacoq.config`,
:mod:`tacoq.serialization`, the contracts and the model. Not the worker, the relay or the built-ins.
"""
