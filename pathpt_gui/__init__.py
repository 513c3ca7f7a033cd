"""PathPT Studio GUI (PySide6). Importing it guards against PySide6 6.12's None refcount leak on Python 3.11."""

from ._none_guard import protect_none

protect_none()
