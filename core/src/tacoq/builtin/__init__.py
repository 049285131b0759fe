"""The embedded defaults, registered as plugins through the same hooks a third party uses."""
