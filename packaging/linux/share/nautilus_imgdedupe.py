"""Nautilus (Files) right-click entries for imgdedupe.

Loaded by nautilus-python (Debian: python3-nautilus) from
/usr/share/nautilus-python/extensions/. Works with Nautilus 3 and 4: the
menu callbacks get (window, files) on 3 and (files,) on 4.
"""

import subprocess

from gi.repository import GObject, Nautilus


class ImgdedupeMenu(GObject.GObject, Nautilus.MenuProvider):
    def get_file_items(self, *args):
        files = args[-1]
        if len(files) != 1 or files[0].get_uri_scheme() != "file":
            return []
        item = files[0]
        path = item.get_location().get_path()
        if item.is_directory():
            label, command = "Find duplicates in this folder", ["--scan", path]
        elif (item.get_mime_type() or "").startswith("image/"):
            label, command = "Find similar images", ["--similar", path]
        else:
            return []
        entry = Nautilus.MenuItem(name="Imgdedupe::" + command[0], label=label, icon="imgdedupe")
        entry.connect("activate", lambda *_: subprocess.Popen(["imgdedupe-gui", *command]))
        return [entry]
