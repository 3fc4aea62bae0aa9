"""The widgets a user reviews groups with: the group list and grid, their
models, thumbnails, the side-by-side comparison and the threshold bar.

Imports ``imgdedupe.core`` and ``gui.jobs`` (background loads, WorkerError);
never the window modules, which put these widgets together.
"""
