"""File sizes for people, one way everywhere (the CLI, the window, the
confirmation that says how much goes to the trash)."""

from __future__ import annotations


def human_size(n: float) -> str:
    """``532 B``, ``1.5 KB``, ``12.3 MB``, ``2.0 GB`` (binary multiples)."""
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
