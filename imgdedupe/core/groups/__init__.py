"""Pairs to groups: the similarity graph at a threshold (graph), the
library's distinct contents as its nodes (contents), star grouping
(stars), the *suggested* keeper: a chain of criteria that says why
(keeper_rules, keeper_criteria; turned copies from orientation; the
grouping's own tie-break in keeper; the rules a user applies are in
actions.decisions), near-exact groups from perceptual hashes (near_exact),
and scoring against labelled duplicates (evaluate).
"""
