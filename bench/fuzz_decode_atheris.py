"""Coverage-guided fuzzing of decode.decode_image with atheris (libFuzzer).

Needs ``pip install atheris`` (not a project dependency). Pillow's C
decoders are not instrumented, so the guidance comes from the Python side
(Pillow's plugins and our decode module); libFuzzer's mutations still reach
the C code. Any exception other than DecodeError is a crash and stops the
run with the input saved as crash-*.

    python bench/fuzz_decode_atheris.py -atheris_runs=20000 [CORPUS_DIR]

The seed corpus (the small JPEG, PNG, WebP and HEIC files the Hypothesis
fuzzer starts from) is written to CORPUS_DIR when it is empty.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports():
    from PIL import Image

    Image.init()  # import every format plugin now, so they are instrumented too
    from imgdedupe.core.errors import DecodeError
    from imgdedupe.core.images.decode import _ensure_heif_opener, decode_image

    _ensure_heif_opener()

from tests.reliability.fuzzing import seed_files  # noqa: E402

_FOLDER = tempfile.mkdtemp(prefix="imgdedupe-atheris-")
_EXTENSIONS = (".jpg", ".png", ".webp", ".heic")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    # The first byte picks the extension: the decoder treats HEIC by name.
    path = os.path.join(_FOLDER, "input" + _EXTENSIONS[data[0] % len(_EXTENSIONS)])
    with open(path, "wb") as handle:
        handle.write(data[1:])
    try:
        decode_image(path)
    except DecodeError:
        pass


def main() -> None:
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    if corpus and not any(Path(corpus[0]).iterdir()):
        for name, data in seed_files().items():
            ext = os.path.splitext(name)[1]
            (Path(corpus[0]) / name).write_bytes(bytes([_EXTENSIONS.index(ext)]) + data)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
