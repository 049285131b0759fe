"""TacoQ hot reload: answers ``tacoq worker ... --reload`` (see :mod:`tacoq_hotreload.hooks`)."""

__all__: list[str] = []
