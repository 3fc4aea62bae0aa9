"""Entry point of the frozen app: one program, two names.

PyInstaller builds two executables from this one script, ``imgdedupe-gui``
(a windowed program on Windows and macOS) and ``imgdedupe`` (a console
program); each starts the front end its own name asks for.
"""

import multiprocessing
import os
import sys


def main() -> int:
    # A scan on a GPU decodes in spawned processes (core/images/decode_pool.py);
    # in a frozen app each of them starts this same executable, which must
    # then run the worker instead of the app.
    multiprocessing.freeze_support()
    name = os.path.splitext(os.path.basename(sys.executable))[0].lower()
    if name == "imgdedupe":
        from imgdedupe.cli import main as cli_main

        return cli_main()
    from imgdedupe.gui.app import main as gui_main

    return gui_main()


if __name__ == "__main__":
    sys.exit(main())
