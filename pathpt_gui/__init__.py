"""PySide6 GUI of PathPT Studio.

Importing the package changes no process-wide state and loads no Qt: the PySide6 6.12 None-refcount guard
(`pathpt_gui._none_guard.protect_none`) is applied by `pathpt_gui.app.main` and by the GUI test set-up, before a
QApplication exists. Code that builds its own QApplication (benchmarks, embedding) calls it first.
"""
