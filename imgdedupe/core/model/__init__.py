"""Pixels to vectors: one registry record per backbone (registry), its network
(networks, resnet), weights (weights), loading (loading), the running model
(backbone), and what similarity 90 means for it (calibration).
"""
