"""Deprecated: ``tacoq.serializers`` was split (this alias goes in the next release).

The serializer protocols are in :mod:`tacoq.contracts.serializer`, the registry and payload
checks in :mod:`tacoq.serialization`, the built-in serializers in :mod:`tacoq.builtin.serializers`
(CHANGELOG.md, "A core laid out by role").
"""

import warnings

from tacoq.builtin.serializers import *  # noqa: F403
from tacoq.contracts.serializer import *  # noqa: F403
from tacoq.plugins import default_registry  # noqa: F401
from tacoq.serialization import *  # noqa: F403

warnings.warn(
    "tacoq.serializers is deprecated: import from tacoq.contracts.serializer, "
    "tacoq.serialization or tacoq.builtin.serializers instead",
    DeprecationWarning,
    stacklevel=2,
)
