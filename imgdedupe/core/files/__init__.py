"""Find the photos: walk the folders (walk) and hash contents to find byte
copies (hashing).
"""
