"""Deprecated: ``tacoq.runner`` was split (this alias goes in the next release).

``WorkerRunRequest`` and ``WorkerRunner`` are in :mod:`tacoq.contracts.runner`, the built-in
runner in :mod:`tacoq.worker.runner` (CHANGELOG.md, "A core laid out by role").
"""

import warnings

from tacoq.contracts.runner import *  # noqa: F403
from tacoq.worker.runner import *  # noqa: F403

warnings.warn(
    "tacoq.runner is deprecated: import from tacoq.contracts.runner or tacoq.worker.runner",
    DeprecationWarning,
    stacklevel=2,
)
