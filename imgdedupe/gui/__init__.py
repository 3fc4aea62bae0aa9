"""The PySide6 desktop window. All matching lives in ``imgdedupe.core``.

``jobs`` runs the engine off the GUI thread, ``review`` holds the widgets its
groups are reviewed with, and the modules here put the window together.
"""
