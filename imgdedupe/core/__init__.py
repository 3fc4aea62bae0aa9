"""The Qt-free engine, one folder per step of a scan (docs/architecture.md):
files -> storage -> images -> model -> pairs -> groups -> actions, driven by
scan. records, errors and units are the vocabulary they share.

Nothing in this package may import PySide6; tests/core/test_layering.py
enforces it, and that imports only run down that list.
"""
