"""Vectors to scored pairs: exact or PCA + Annoy search (search, ann), the pair
cache (cache), and "Find similar" for one image (similar).
"""
