"""Command-line front end: a thin layer over ``imgdedupe.core``."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import __version__
from .core.errors import DatabaseError, DecodeError, ImgDedupeError, ScanCancelled, WeightsError
from .core.groups.keeper_rules import (
    DEFAULT_CHAIN,
    KeeperChain,
    KeeperRulesError,
    describe_criteria,
)
from .core.groups.protection import Protection
from .core.model import calibration
from .core.model.registry import BACKBONES
from .core.records import TIERS, Notice
from .core.scan.events import ExactGroupsReady, NearExactGroupsReady, Progress, ScanResult
from .report import group_to_dict, printable, result_to_dict, write_json, write_text

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3
EXIT_MODEL = 4
EXIT_CANCELLED = 130
EXIT_BROKEN_PIPE = 141  # as a shell reports a command ended by SIGPIPE
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT})

EPILOG = """\
Nothing imgdedupe does from the command line changes, moves or deletes your
photos: it reads them and writes only its own cache database.

The similarity scale runs from 0 to 100 and means the same whichever
backbone is used: 100 is identical, unrelated photos score below 60. The
threshold only chooses candidates: each candidate pair is then checked on
its pixels, and grouped only in one of three tiers:
  exact           the same bytes
  near_duplicate  the same picture: a re-encoded, resized, cropped,
                  recoloured, rotated or otherwise edited copy
  similar_shot    the same scene taken again (a burst, a second take):
                  for review; no keeper is suggested
Photos that are merely alike (two watches, two faces) are not grouped.

Exit codes:
  0    finished (files that could not be read are listed, not fatal)
  1    unexpected internal error (please report it)
  2    bad command line, or a path that does not exist
  3    the cache database cannot be used (folder missing, not writable,
       disk full, or in use by another process or scan)
  4    model weights missing or damaged
  130  cancelled (Ctrl+C); finished work stays cached

Environment: IMGDEDUPE_WEIGHTS (ResNet50 weights file), IMGDEDUPE_DB
(cache database file).
"""


def default_db() -> str:
    env = os.environ.get("IMGDEDUPE_DB")
    if env:
        return env
    from platformdirs import user_cache_dir

    folder = Path(user_cache_dir("imgdedupe", appauthor=False))
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / "cache.sqlite3")


def _tiers(text: str) -> tuple[str, ...]:
    chosen = tuple(t.strip().replace("-", "_") for t in text.split(",") if t.strip())
    unknown = [t for t in chosen if t not in TIERS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown tier {', '.join(unknown) or '(none given)'}; choose from {', '.join(TIERS)}")
    return chosen


KEEPER_EPILOG = f"""\
Keeper rules (--keep-rules): which copy of each group is suggested for
keeping. Each rule keeps the copies it prefers among those still tied; the
next rule decides between those; a tie on every rule goes to the path's
order. The rules:
{describe_criteria()}
Default: {DEFAULT_CHAIN}
Each group's JSON "keeper_reason" and the text report say which rules
decided ("kept: 2x the pixels of IMG_1.jpg").

"""


def _keep_rules(text: str) -> KeeperChain:
    try:
        chain = KeeperChain.parse(text)
    except KeeperRulesError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if chain.folder is None:
        return chain
    folder = os.path.abspath(os.path.expanduser(chain.folder))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"the preferred folder does not exist: {folder}")
    return chain.with_folder(folder)


def _threshold(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("the threshold is a similarity from 0 to 100")
    return value


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="FILE",
                        help="cache database (default: the user cache folder, or $IMGDEDUPE_DB)")
    parser.add_argument("--backbone", choices=BACKBONES, default="resnet50",
                        help="feature network: resnet50 (default; needs ImageNet weights, and "
                             "falls back to efficientnet-lite0 with a notice when they are "
                             "missing) or efficientnet-lite0 (about 10x faster, always offline)")
    parser.add_argument("--weights", metavar="FILE",
                        help="ResNet50 weights file (torchvision's resnet50-11ad3fa6.pth)")
    parser.add_argument("--download-weights", action="store_true",
                        help="download the ResNet50 weights if they are not found (100 MB)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where the network runs (default: a CUDA GPU when present)")
    parser.add_argument("--no-rotations", dest="rotations", action="store_false",
                        help="do not match photos rotated by 90/180/270 degrees without an "
                             "EXIF tag (found from the pictures' turned hashes; costs little)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgdedupe",
        description="Find duplicate and near-duplicate photos in your folders.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"imgdedupe {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    scan = sub.add_parser(
        "scan", help="find groups of duplicate and similar images in folders",
        description="Walk the folders, embed every image not yet cached, and report groups of "
                    "duplicates. A second scan of an unchanged folder reuses the cache.",
        epilog=KEEPER_EPILOG + EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    scan.add_argument("paths", nargs="+", metavar="PATH", help="folders (or images) to scan")
    scan.add_argument("--threshold", type=_threshold, default=calibration.DEFAULT_THRESHOLD,
                      metavar="T", help="minimum similarity, 0-100 (default %(default)g)")
    scan.add_argument("--json", metavar="OUT",
                      help="also write the full report as JSON to OUT ('-' for stdout)")
    scan.add_argument("--tiers", type=_tiers, default=TIERS, metavar="LIST",
                      help="which tiers to report, comma-separated: exact (the same bytes), "
                           "near_duplicate (the same picture, edited), similar_shot (the same "
                           "scene taken again); default all three")
    scan.add_argument("--keep-rules", type=_keep_rules, default=DEFAULT_CHAIN, metavar="RULES",
                      help="how each group's keeper is chosen: rules, comma-separated, best "
                           "first, from pixels, upright, exif, name, compression, date, "
                           "folder=DIR, path (see Keeper rules below; default "
                           f"{DEFAULT_CHAIN})")
    scan.add_argument("--include-hidden", action="store_true",
                      help="also scan hidden files and folders")
    scan.add_argument("--protect", action="append", default=[], metavar="DIR",
                      help="never suggest deleting a photo in DIR or below it (repeatable; any "
                           "folder, inside a scanned one or not): a group's suggested keeper "
                           "is a protected photo when it has one, and groups whose photos are "
                           "all protected are left out")
    scan.add_argument("--show-protected", action="store_true",
                      help="also list the groups whose photos are all protected")
    scan.add_argument("--across", action="store_true",
                      help="compare across folders only: group only photos that lie under "
                           "different PATHs (what in one folder is already in another)")
    scan.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    scan.add_argument("--stream", action="store_true",
                      help="write events to stdout as they happen, one JSON object a line: "
                           '{"event": "progress", ...}, "exact_groups" (byte copies, before '
                           'any image is decoded), "near_exact_groups" (re-encoded or resized '
                           "copies found by a perceptual hash while the model still runs; each "
                           'replaces the previous), then "result" (the --json report)')
    scan.add_argument("--cluster", metavar="ADDRESS",
                      help="decode and embed on a Ray cluster: ray://HOST:PORT, or auto (the "
                           "Ray cluster on this machine; one is started if none runs). Needs "
                           "pip install 'imgdedupe[cluster]' and the folders at the same "
                           "paths on every node (docs/scale.md)")
    _model_options(scan)

    similar = sub.add_parser(
        "similar", help="list the cached images most similar to one image",
        description="Compare one image (anywhere on disk) with every image a previous scan "
                    "cached, and list the best matches with their similarity.")
    similar.add_argument("image", metavar="IMAGE")
    similar.add_argument("-k", type=int, default=10, metavar="N",
                         help="how many matches to list (default %(default)s)")
    similar.add_argument("--json", metavar="OUT", help="write the matches as JSON ('-': stdout)")
    _model_options(similar)

    evaluate = sub.add_parser(
        "eval", help="scan a labelled folder and print precision and recall",
        description="Scan ROOT and score the groups against a ground-truth CSV "
                    "(path,group_id,transform,base; paths relative to ROOT).")
    evaluate.add_argument("root", metavar="ROOT")
    evaluate.add_argument("--groundtruth", required=True, metavar="CSV")
    evaluate.add_argument("--threshold", type=_threshold, default=calibration.DEFAULT_THRESHOLD,
                          metavar="T")
    evaluate.add_argument("--json", metavar="OUT", help="also write the scan report as JSON")
    evaluate.add_argument("-q", "--quiet", action="store_true")
    _model_options(evaluate)
    return parser


class _ProgressLine:
    """One self-rewriting status line on a terminal, sparse lines otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.phase = ""

    def __call__(self, event: Progress) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        changed = event.phase != self.phase
        if not changed and now - self.last < (0.1 if self.tty else 5.0) and \
                event.done != event.total:
            return
        self.last, self.phase = now, event.phase
        total = f"/{event.total}" if event.total is not None else ""
        text = printable(f"{event.phase}: {event.done}{total} {event.message}".rstrip())
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
            if event.phase == "done":
                sys.stderr.write("\r\033[K")
        elif event.phase != "done":
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _config(args: argparse.Namespace, paths: list[str], threshold: float):  # noqa: ANN202
    from .core.scan.config import ScanConfig

    return ScanConfig(
        roots=tuple(paths), db_path=args.db or default_db(), backbone=args.backbone,
        weights=args.weights, device=args.device, threshold=threshold,
        rotations=args.rotations, include_hidden=getattr(args, "include_hidden", False),
        across=getattr(args, "across", False),
        allow_download=args.download_weights,
        keep_rules=getattr(args, "keep_rules", DEFAULT_CHAIN),
        cluster=getattr(args, "cluster", None),
    )


def _stream_line(kind: str, payload: dict) -> None:
    sys.stdout.write(json.dumps({"event": kind, **payload}, ensure_ascii=True) + "\n")
    sys.stdout.flush()  # a reader sees each event as it happens


def _stream(event: object, tiers: tuple[str, ...], protected: _Protected | None = None) -> None:
    """One JSON line per event (``scan --stream``); the result as
    ``protected`` reports it."""
    if isinstance(event, Progress):
        _stream_line("progress", {"phase": event.phase, "done": event.done,
                                  "total": event.total, "message": event.message})
    elif isinstance(event, Notice):
        _stream_line("notice", {"code": event.code, "message": event.message})
    elif isinstance(event, ExactGroupsReady):
        _stream_line("exact_groups", {"groups": [group_to_dict(g) for g in event.groups]})
    elif isinstance(event, NearExactGroupsReady):
        _stream_line("near_exact_groups", {"hashed": event.hashed,
                                           "groups": [group_to_dict(g) for g in event.groups]})
    elif isinstance(event, ScanResult):
        protected = protected or _Protected(Protection())
        result, hidden = protected.view(event)
        _stream_line("result", result_to_dict(result, tiers, protected.protection, hidden))


def _run_scan(config, quiet: bool, stream: bool = False,  # noqa: ANN001
              tiers: tuple[str, ...] = TIERS, protected: _Protected | None = None
              ) -> ScanResult:
    from .core.scan.pipeline import run_scan

    progress = _ProgressLine(not quiet)
    cancel = threading.Event()
    result = None
    for event in run_scan(config, cancel):
        if stream:
            _stream(event, tiers, protected)
        if isinstance(event, Progress):
            progress(event)
        elif isinstance(event, Notice):
            sys.stderr.write(("\n" if progress.tty and not quiet else "") +
                             f"Note: {printable(event.message, lines=True)}\n")
        elif isinstance(event, ExactGroupsReady) and not quiet and event.groups:
            sys.stderr.write(("\r\033[K" if progress.tty else "") +
                             f"{len(event.groups)} group(s) of exact copies found so far\n")
        elif isinstance(event, ScanResult):
            result = event
    assert result is not None
    return result


def _write_json_to(target: str, write) -> None:  # noqa: ANN001
    if target == "-":
        write(sys.stdout)
        return
    with open(target, "w", encoding="utf-8") as handle:
        write(handle)


def _check_paths(paths: list[str]) -> None:
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(", ".join(missing))


def _protection(folders: list[str]) -> Protection:
    """--protect: each must be a folder; a typo must not protect nothing."""
    missing = [f for f in folders if not os.path.isdir(f)]
    if missing:
        raise ImgDedupeError(f"--protect: not a folder: {missing[0]}")
    return Protection.of(folders)


@dataclass(frozen=True)
class _Protected:
    """How ``scan --protect`` reports a result: a protected photo is each
    group's keeper where it has one, and groups all protected are left out
    unless ``show_all``."""

    protection: Protection
    show_all: bool = False

    def view(self, result: ScanResult) -> tuple[ScanResult, int]:
        """The result as reported, and how many groups it left out."""
        groups = self.protection.apply(result.groups)
        shown = groups if self.show_all else \
            tuple(g for g in groups if not self.protection.all_protected(g))
        return replace(result, groups=shown), len(groups) - len(shown)


def cmd_scan(args: argparse.Namespace) -> int:
    _check_paths(args.paths)
    protected = _Protected(_protection(args.protect), args.show_protected)
    result, hidden = protected.view(_run_scan(_config(args, args.paths, args.threshold),
                                              args.quiet, args.stream, args.tiers, protected))
    protection = protected.protection
    if args.json:
        _write_json_to(args.json, lambda s: write_json(result, s, args.tiers, protection, hidden))
    if args.json != "-" and not args.stream:  # stdout carries JSON lines alone
        write_text(result, sys.stdout, args.tiers, protection, hidden)
    return EXIT_OK


def cmd_similar(args: argparse.Namespace) -> int:
    from .core.model.loading import load_backbone
    from .core.pairs.similar import find_similar, folder_scanned
    from .core.storage.store import Store

    _check_paths([args.image])
    with Store(args.db or default_db()) as store:
        backbone, notices = load_backbone(args.backbone, weights=args.weights,
                                          device=args.device,
                                          allow_download=args.download_weights)
        for notice in notices:
            sys.stderr.write(f"Note: {printable(notice.message, lines=True)}\n")
        matches = find_similar(args.image, store, backbone, k=args.k, rotations=args.rotations)
        scanned = folder_scanned(store, args.image)
    folder = os.path.dirname(os.path.abspath(args.image))
    if not scanned:  # the image itself was embedded on the spot; its folder was not scanned
        sys.stderr.write(f"Note: {printable(folder)} has not been scanned with this cache, so "
                         "its photos are not compared; to include them, run: imgdedupe scan "
                         f"{printable(folder)}\n")
    if args.json:
        payload = {"query": args.image, "backbone": backbone.info.name,
                   "folder_scanned": scanned,
                   "matches": [{"path": m.path, "similarity": m.similarity} for m in matches]}
        _write_json_to(args.json, lambda s: s.write(json.dumps(payload, indent=2) + "\n"))
    if args.json != "-":
        if not matches:
            print("No photo in the cache is like it yet: scan the folders to compare it with "
                  f"(imgdedupe scan FOLDER, with the {backbone.info.name} backbone).")
        for m in matches:
            print(f"{m.similarity:5.1f}  {printable(m.path)}")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from .core.groups.evaluate import load_groundtruth, pairwise, relative

    _check_paths([args.root, args.groundtruth])
    result = _run_scan(_config(args, [args.root], args.threshold), args.quiet)
    if args.json:
        _write_json_to(args.json, lambda s: write_json(result, s))
    truth = load_groundtruth(args.groundtruth)
    groups = [relative((m.path for m in g.members), args.root) for g in result.groups]
    scores = pairwise(truth.label, groups)
    # Exact copies: members of one group that share a copy set.
    copy_sets = [relative((m.path for m in g.members if m.copy_set == n), args.root)
                 for g in result.groups for n in {m.copy_set for m in g.members} - {None}]
    exact = pairwise(truth.byte_identical_label(args.root), copy_sets)
    print(f"backbone {result.backbone}, threshold {result.threshold:g}, "
          f"{result.stats.files_seen} images")
    for name, s in (("all duplicates", scores), ("exact copies", exact)):
        print(f"{name:>15}: precision {s.precision:.4f}  recall {s.recall:.4f}  F1 {s.f1:.4f}  "
              f"({s.correct_pairs} of {s.true_pairs} true pairs found, "
              f"{s.predicted_pairs} predicted)")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    existing = set(logging.getLogger().handlers)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    for handler in set(logging.getLogger().handlers) - existing:  # log lines name files too
        handler.setFormatter(_PrintableFormatter(handler.formatter))
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handlers = {"scan": cmd_scan, "similar": cmd_similar, "eval": cmd_eval}
    try:
        return handlers[args.command](args)
    except FileNotFoundError as exc:
        _say(f"no such file or folder: {exc}")
        return EXIT_USAGE
    except DatabaseError as exc:
        _say(str(exc))
        return EXIT_DATABASE
    except sqlite3.Error as exc:  # the engine wraps its own; never a raw traceback
        _say(f"cannot use the cache database: {exc}")
        return EXIT_DATABASE
    except BrokenPipeError:
        # The reader went away (`imgdedupe scan ... | head`): not an error
        # worth a traceback. Output is pointed at devnull, so that Python's
        # own flush at exit does not fail on the closed pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRNOS:
            raise
        # The cache's side files (the pair cache beside the database) or
        # the --json report on a full or read-only disk.
        _say(f"cannot write: {exc}")
        return EXIT_DATABASE
    except WeightsError as exc:
        _say(str(exc))
        return EXIT_MODEL
    except DecodeError as exc:
        _say(f"cannot read the image: {exc.detail} ({exc.reason})")
        return EXIT_USAGE
    except (ScanCancelled, KeyboardInterrupt):
        print("\nimgdedupe: cancelled; finished work is cached", file=sys.stderr)
        return EXIT_CANCELLED
    except ImgDedupeError as exc:
        _say(str(exc))
        return EXIT_USAGE


def _say(message: str) -> None:
    """An error for the user on stderr; the paths in it are printed safely."""
    print(f"imgdedupe: {printable(message, lines=True)}", file=sys.stderr)


class _PrintableFormatter(logging.Formatter):
    """Log lines with the control characters of names escaped (report.printable)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return printable(self._inner.format(record), lines=True)


if __name__ == "__main__":
    sys.exit(main())
