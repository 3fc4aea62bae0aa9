"""The Qt-free engine: walk, hash, decode, embed, store, index, group.

Nothing in this package may import PySide6; tests/core/test_layering.py
enforces it so the engine stays usable from the CLI, benchmarks and scripts.
"""
