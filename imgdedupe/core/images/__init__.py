"""File to pixels: decode any supported image safely (decode), the
network's 224x224 input (preprocess), decoding in threads or processes
(decode_pool), perceptual hashes (phash), EXIF facts that tell a
camera's original from an export (photo_facts); camera RAW files through
LibRaw (raw, with raw_header's checks). A new file format is a decoder in
decode.py plus its extension in files.walk.IMAGE_EXTENSIONS (the walk
only hands on files with a known extension).
"""
