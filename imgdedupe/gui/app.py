"""``imgdedupe-gui``: the QApplication, logging, the excepthook, automation flags.

    imgdedupe-gui [PATH...]                 folders to add; images to find similar ones to
    imgdedupe-gui --scan DIR --screenshot OUT.png --exit-when-done

The automation flags drive the real window (offscreen or under Xvfb), so
CI and the packaging tests can check a build end to end.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
import traceback
from pathlib import Path

from .. import __version__

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def resources_dir() -> Path:
    frozen = getattr(sys, "_MEIPASS", None)
    return Path(frozen) / "resources" if frozen else RESOURCES


def build_parser() -> argparse.ArgumentParser:
    from ..core.model.registry import BACKBONES

    parser = argparse.ArgumentParser(
        prog="imgdedupe-gui",
        description="Find duplicate and near-duplicate photos, and clean up safely.")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="folders to add, or one image to find similar images to")
    parser.add_argument("--version", action="version", version=f"imgdedupe {__version__}")
    parser.add_argument("--scan", action="append", default=[], metavar="DIR",
                        help="add DIR and start scanning at once (repeatable)")
    parser.add_argument("--similar", action="append", default=[], metavar="IMAGE",
                        help="open with the images most similar to IMAGE "
                             "(repeatable: one search per image)")
    parser.add_argument("--db", metavar="FILE", help="cache database (default: user cache)")
    parser.add_argument("--backbone", choices=BACKBONES, help="feature network")
    parser.add_argument("--threshold", type=float, help="similarity 70-100")
    parser.add_argument("--settings", metavar="FILE",
                        help="keep settings in this INI file instead of the user's settings")
    parser.add_argument("--screenshot", metavar="PNG",
                        help="after the scan, save a picture of the window")
    parser.add_argument("--compare-screenshot", metavar="PNG",
                        help="after the scan, compare the first group and save a picture")
    parser.add_argument("--mark-suggested", action="store_true",
                        help="after the scan, mark all but each group's suggested keeper "
                             "(nothing is moved until you confirm)")
    parser.add_argument("--protect", action="append", default=[], metavar="DIR",
                        help="protect DIR: never mark anything in it (repeatable; remembered "
                             "like the folder list's right-click \"Protected\")")
    parser.add_argument("--across", action="store_true",
                        help="compare across folders only (remembered, like its checkbox)")
    parser.add_argument("--sort", choices=("space", "size", "folder", "date"),
                        help="order of the group list (default: space to free)")
    parser.add_argument("--window-size", metavar="WxH",
                        help="open the window at this size (screenshots at a given size)")
    parser.add_argument("--exit-when-done", action="store_true",
                        help="quit when the scan (and screenshots) are done; exit 1 on error")
    return parser


def setup_logging() -> Path | None:
    """Log to a rotating file in the platform's log folder."""
    from platformdirs import user_log_dir

    folder = Path(user_log_dir("imgdedupe", appauthor=False))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(folder / "imgdedupe.log",
                                                       maxBytes=2_000_000, backupCount=3,
                                                       encoding="utf-8")
    except OSError:
        return None  # a read-only home must not stop the app
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return folder / "imgdedupe.log"


def install_excepthook(log_file: Path | None) -> None:
    """One hook for every uncaught error: log it and show it; never exit."""
    from .dialogs import show_error
    from .jobs.errors import WorkerError

    def hook(kind, value, tb) -> None:  # noqa: ANN001
        details = "".join(traceback.format_exception(kind, value, tb))
        log.error("uncaught error\n%s", details)
        from PySide6.QtWidgets import QApplication

        if QApplication.instance() is not None:
            where = f"\n\nThe log is in {log_file}" if log_file else ""
            show_error(QApplication.activeWindow(), WorkerError(
                "Something went wrong", f"{kind.__name__}: {value}{where}", details))

    sys.excepthook = hook


def make_application():  # noqa: ANN201
    """The QApplication, which also takes macOS's "open this file" events:
    Finder's Open With and dropped files arrive as QFileOpenEvent, not argv."""
    from PySide6.QtCore import QEvent, Signal
    from PySide6.QtWidgets import QApplication

    class Application(QApplication):
        file_opened = Signal(str)

        def event(self, event: QEvent) -> bool:
            if event.type() == QEvent.Type.FileOpen:
                self.file_opened.emit(event.file())  # type: ignore[attr-defined]
                return True
            return super().event(event)

    existing = QApplication.instance()
    return existing if existing is not None else Application([sys.argv[0]])


def make_settings(path: str | None):  # noqa: ANN201
    from PySide6.QtCore import QSettings

    path = path or os.environ.get("IMGDEDUPE_SETTINGS")
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("imgdedupe", "imgdedupe")


def similar_queries(similar: list[str] | str | None, paths: list[str]) -> list[str]:
    """Each image to find similar ones to, once: every ``--similar``, then
    every image among the plain paths. Several come together when files
    are dropped on the program's icon or a file manager passes a selection
    (Nemo's ``--similar %F``); none may be dropped silently. A str is an
    older launch's single ``--similar``."""
    asked = [similar] if isinstance(similar, str) else list(similar or [])
    queries: list[str] = []
    for path in [*asked, *(p for p in paths if os.path.isfile(p))]:
        if str(path) not in queries:
            queries.append(str(path))
    return queries


def take_request(window, request: dict) -> None:  # noqa: ANN001
    """A later launch's paths, handed over to this window: folders are
    added (and scanned when it asked to scan), each image is searched for,
    and the window comes to the front."""
    paths = [str(p) for p in request.get("paths") or []]
    scan = [str(p) for p in request.get("scan") or []]
    for path in [*paths, *scan]:
        log.info("handed over by another launch: %s", path)
    folders = [p for p in [*paths, *scan] if os.path.isdir(p)]
    if folders:
        window.add_folders(folders)
        if scan and not window.controller.running:
            window.start_scan()
        elif scan:
            window.scan_after_this_one()  # the folders join the next scan, not none
    for image in similar_queries(request.get("similar"), paths):
        log.info("handed over by another launch: find similar to %s", image)
        window.find_similar(image)
    window.showNormal()
    window.raise_()
    window.activateWindow()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scripted = bool(args.screenshot or args.compare_screenshot or args.exit_when_done)
    missing = [p for p in args.scan if not os.path.isdir(p)]
    if missing and scripted:
        # Nothing to scan would leave a scripted run waiting for ever.
        print(f"imgdedupe-gui: not a folder: {missing[0]}", file=sys.stderr)
        return 2
    unprotectable = [p for p in args.protect if not os.path.isdir(p)]
    if unprotectable:  # a typo must not protect nothing
        print(f"imgdedupe-gui: --protect: not a folder: {unprotectable[0]}", file=sys.stderr)
        return 2
    from PySide6.QtGui import QIcon

    from ..cli import default_db
    from ..report import printable
    from .automation import Automation
    from .main_window import MainWindow

    log_file = setup_logging()
    app = make_application()
    app.setApplicationName("imgdedupe")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("imgdedupe")
    icon = resources_dir() / "icons" / "imgdedupe.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    install_excepthook(log_file)
    db_path = args.db or default_db()
    instance = None
    if not scripted:  # a scripted run (tests, packaging checks) is its own window
        from .single_instance import SingleInstance, hand_over, instance_name

        request = {"paths": [os.path.abspath(p) for p in args.paths],
                   "scan": [os.path.abspath(p) for p in args.scan],
                   "similar": [os.path.abspath(p) for p in args.similar]}
        name = instance_name(db_path)
        instance = SingleInstance(name, lambda r: None)
        if not instance.primary:
            if hand_over(name, request):
                return 0  # the running window has it
            log.warning("the running window did not answer; opening another")
    settings = make_settings(args.settings)
    window = MainWindow(settings, db_path)
    if instance is not None and instance.primary:
        instance.set_handler(lambda request: take_request(window, request))
        app.aboutToQuit.connect(instance.release)  # the next launch need not wait for staleness
    if hasattr(app, "file_opened"):
        app.file_opened.connect(window.open_path)
    if args.backbone:
        window.backbone_box.setCurrentText(args.backbone)
    if args.threshold is not None:
        window.threshold_bar.set_value(args.threshold)
    if args.sort:
        from ..core.actions.review_order import SortOrder

        window.review.bar.set_order({"space": SortOrder.SPACE, "size": SortOrder.SIZE,
                                     "folder": SortOrder.FOLDER,
                                     "date": SortOrder.CAPTURE_DATE}[args.sort])
    for folder in args.protect:
        window.folder_options.set_protected(folder, True)
    if args.across:
        window.folder_options.across_box.setChecked(True)
    if args.scan:
        window.folders.clear()  # scan exactly what was asked, not last time's folders
    window.add_folders([p for p in [*args.paths, *args.scan] if os.path.isdir(p)])
    if args.window_size:
        width, _, height = args.window_size.partition("x")
        window.resize(int(width), int(height))
    window.show()
    automation = Automation(window, args.screenshot, args.compare_screenshot,
                            args.exit_when_done, args.mark_suggested)
    if missing:
        window.phase_label.setText(f"Not a folder, not scanned: {printable(missing[0])}")
    if args.scan:
        window.start_scan()
    elif not args.paths and not args.similar and not scripted:
        window.restore_last_scan()  # the last scan's groups and marks, from the cache
    for image in similar_queries(args.similar, args.paths):
        window.find_similar(image)
    code = app.exec()
    return automation.exit_code if args.exit_when_done else code


if __name__ == "__main__":
    sys.exit(main())
