"""Pairs to groups: the similarity graph at a threshold (graph, contents), star
grouping (stars), the suggested keeper (keeper), near-exact groups from
perceptual hashes (near_exact), and scoring against labelled duplicates
(evaluate).
"""
