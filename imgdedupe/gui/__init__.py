"""The PySide6 desktop window. All matching lives in ``imgdedupe.core``."""
