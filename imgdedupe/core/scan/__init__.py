"""The scan: its config, the pipeline (a generator of events), and its steps:
library (walk, sync, hash), embed_step, grouping; memo replays an unchanged
library's answer.
"""
