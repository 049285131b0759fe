"""The embedded defaults, registered as plugins through the same hooks a third party uses: the
``memory://`` broker and store, the ``sqlite:///`` store, the built-in serializers and the
built-in worker runner.

May import anything below it (the worker, for the runner). Nothing imports it but the plugin
host, by module name, and tests.
"""
