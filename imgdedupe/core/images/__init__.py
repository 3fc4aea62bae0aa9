"""File to pixels: decode any supported image safely (decode), the network's
224x224 input (preprocess), decoding in threads or processes (decode_pool),
perceptual hashes (phash).
"""
