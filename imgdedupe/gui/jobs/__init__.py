"""Engine work run off the GUI thread: the scan, short tasks, "Find similar",
the weights download, and how their progress and failures reach the window.

Imports ``imgdedupe.core`` and nothing else of the GUI: the review widgets
and the window build on it, never the other way round.
"""
