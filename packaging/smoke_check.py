#!/usr/bin/env python3
"""Smoke-test a built bundle: scan the sample photos it carries with
ResNet50 and compare the result with the samples' EXPECTED.md.

    python packaging/smoke_check.py dist/imgdedupe          # one-folder bundle
    python packaging/smoke_check.py /Volumes/x/imgdedupe.app
    python packaging/smoke_check.py --cli PROGRAM --samples DIR [--weights-dir DIR]

Exit 1, one line a problem, when the scan fails or writes no report; when
the report has any notice (backbone_fallback: ResNet50's weights were not
found) or the output speaks of a fallback; when the backbone is not
ResNet50 or its weights are not the bundle's file; when the groups differ
from EXPECTED.md's (each expected set, nothing more); when the corrupt
sample is not reported as unreadable. The scan runs on a fresh cache
database, without $IMGDEDUPE_WEIGHTS and with an empty torch cache, so the
only weights it can find are the ones in the bundle. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# How the app words a fallback (core.model.loading): "... the EfficientNet-
# Lite0 backbone is used instead ..."; and the usual spellings besides.
FALLBACK_TEXT = re.compile(
    r"\bfall(?:s|ing|en)?[ -]?back|\bused instead\b|\bweights were not found\b", re.IGNORECASE)


@dataclass(frozen=True)
class Expected:
    """EXPECTED.md's summary, as paths relative to the samples folder."""

    groups: frozenset[frozenset[str]]
    alone: frozenset[str]  # must be in no group
    corrupt: frozenset[str]  # must be reported as unreadable

    @property
    def files(self) -> frozenset[str]:
        return frozenset().union(*self.groups) | self.alone | self.corrupt


def expected_result(samples: Path) -> Expected:
    """Read the "## Summary" table of samples/EXPECTED.md (written by
    packaging/make_samples.py): a row of two or more files is a group, of
    one file a photo alone, and the row named "corrupt" the bad files."""
    text = (samples / "EXPECTED.md").read_text(encoding="utf-8")
    summary = text.split("\n## Summary", 1)
    if len(summary) < 2:
        raise ValueError(f"{samples / 'EXPECTED.md'} has no '## Summary' table")
    groups, alone, corrupt = set(), set(), set()
    for line in summary[1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 2:
            continue
        files = frozenset(re.findall(r"`([^`]+)`", cells[1]))
        if not files:
            continue  # the header and the |---| line
        if cells[0] == "corrupt":
            corrupt |= files
        elif len(files) == 1:
            alone |= files
        else:
            groups.add(files)
    if not groups or not corrupt:
        raise ValueError(f"{samples / 'EXPECTED.md'}: no groups or no corrupt file in its summary")
    return Expected(frozenset(groups), frozenset(alone), frozenset(corrupt))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    cli: Path
    samples: Path
    weights_dir: Path | None


def find_bundle(root: Path) -> Bundle:
    """The command-line program and the data folder of a PyInstaller build:
    a one-folder bundle (data in _internal/, PyInstaller 6; or beside the
    programs, 5) or a macOS .app (program in Contents/MacOS, data in
    Contents/Resources or Frameworks)."""
    exe = "imgdedupe.exe" if os.name == "nt" else "imgdedupe"
    if (root / "Contents" / "MacOS").is_dir():
        cli = root / "Contents" / "MacOS" / exe
        data_dirs = [root / "Contents" / "Resources", root / "Contents" / "Frameworks"]
    else:
        cli = root / exe
        data_dirs = [root / "_internal", root]
    if not cli.is_file():
        raise FileNotFoundError(f"no {exe} program in {root}")
    for data in data_dirs:
        samples = data / "resources" / "samples"
        if (samples / "EXPECTED.md").is_file():
            weights = data / "resources" / "weights"
            return Bundle(cli, samples, weights if weights.is_dir() else None)
    raise FileNotFoundError(f"the bundle carries no resources/samples/EXPECTED.md "
                            f"(looked in {', '.join(map(str, data_dirs))})")


def run_scan(cli: Path, samples: Path, work: Path, backbone: str,
             timeout_s: float = 900) -> tuple[int, dict | None, str]:
    """Scan ``samples`` with the program ``cli`` on a fresh cache: its exit
    status, its JSON report (None if it wrote none) and all it printed."""
    env = {k: v for k, v in os.environ.items() if k not in ("IMGDEDUPE_WEIGHTS", "IMGDEDUPE_DB")}
    env["TORCH_HOME"] = str(work / "torch-home")  # empty: no cached weights
    env["PYTHONIOENCODING"] = "utf-8"
    report = work / "report.json"
    try:
        done = subprocess.run(
            [str(cli), "scan", str(samples), "--backbone", backbone,
             "--db", str(work / "smoke.sqlite3"), "--json", str(report)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=timeout_s,
            encoding="utf-8", errors="replace")
    except subprocess.TimeoutExpired as e:
        text = e.output.decode("utf-8", "replace") if isinstance(e.output, bytes) else e.output
        return 124, None, (text or "") + f"\n(killed after {timeout_s:g} s)\n"
    parsed = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else None
    return done.returncode, parsed, done.stdout


def _relative(path: str, samples: Path) -> str:
    try:
        return Path(path).resolve().relative_to(samples.resolve()).as_posix()
    except ValueError:
        return path


def problems(returncode: int, report: dict | None, output: str, expected: Expected,
             samples: Path, backbone: str = "resnet50",
             weights_dir: Path | None = None) -> list[str]:
    """Everything wrong with a scan of the samples; empty when it passed.
    ``weights_dir``, for ResNet50, is the bundle's weights folder: the
    model id must name a file in it."""
    out = []
    if returncode != 0:
        out.append(f"the scan exited with status {returncode}")
    for line in output.splitlines():
        if FALLBACK_TEXT.search(line):
            out.append(f"the output speaks of a fallback: {line.strip()}")
            break
    if report is None:
        return out + ["the scan wrote no JSON report"]
    for notice in report.get("notices", []):
        out.append(f"notice {notice.get('code')}: {notice.get('message', '').splitlines()[0]}")
    if report.get("backbone") != backbone:
        out.append(f"backbone {report.get('backbone')!r} ran, not {backbone!r}")
    model_id = str(report.get("model_id", ""))
    if backbone == "resnet50":
        digest = model_id.split(":")[1] if model_id.count(":") >= 2 else ""
        bundled = sorted(weights_dir.glob("*.pth")) if weights_dir is not None else []
        if weights_dir is None:
            out.append("no bundled weights folder to check ResNet50's weights against "
                       "(the bundle has no resources/weights; or give --weights-dir)")
        elif not bundled:
            out.append(f"the bundle carries no ResNet50 weights (no .pth in {weights_dir})")
        elif not digest or not any(sha256_file(p).startswith(digest) for p in bundled):
            out.append(f"model {model_id!r} did not run the bundle's weights "
                       f"({', '.join(p.name for p in bundled)})")

    got = {frozenset(_relative(m["path"], samples) for m in g["members"]): g.get("tier")
           for g in report.get("groups", [])}
    for group in sorted(expected.groups - got.keys(), key=sorted):
        out.append(f"expected group missing: {sorted(group)}")
    for group in sorted(got.keys() - expected.groups, key=sorted):
        out.append(f"unexpected group ({got[group]}): {sorted(group)}")
    grouped = frozenset().union(*got) if got else frozenset()
    for path in sorted(expected.alone & grouped):
        out.append(f"{path} must stay alone, but is in a group")
    errors = {_relative(e["path"], samples): e.get("reason") for e in report.get("errors", [])}
    for path in sorted(expected.corrupt - errors.keys()):
        out.append(f"{path} is corrupt but was not reported as unreadable")
    for path in sorted(errors.keys() - expected.corrupt):
        out.append(f"{path} could not be read ({errors[path]})")
    seen = report.get("stats", {}).get("files_seen")
    if seen != len(expected.files):
        out.append(f"{seen} files seen, EXPECTED.md lists {len(expected.files)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", nargs="?", type=Path,
                        help="dist/imgdedupe, an installed copy of it, or imgdedupe.app")
    parser.add_argument("--cli", type=Path, help="the imgdedupe program (default: the bundle's)")
    parser.add_argument("--samples", type=Path,
                        help="the samples folder (default: the bundle's resources/samples)")
    parser.add_argument("--weights-dir", type=Path,
                        help="where the bundle keeps ResNet50's weights "
                             "(default: the bundle's resources/weights)")
    parser.add_argument("--backbone", default="resnet50",
                        help="backbone to ask for and expect (default %(default)s; "
                             "efficientnet-lite0 checks a build without ResNet50's weights)")
    args = parser.parse_args(argv)

    cli, samples, weights_dir = args.cli, args.samples, args.weights_dir
    if args.bundle is not None:
        try:
            found = find_bundle(args.bundle)
        except FileNotFoundError as e:
            print(f"smoke_check: FAILED: {e}", file=sys.stderr)
            return 1
        cli, samples = cli or found.cli, samples or found.samples
        weights_dir = weights_dir or found.weights_dir
    if cli is None or samples is None:
        parser.error("give a bundle, or --cli and --samples")
    expected = expected_result(samples)
    with tempfile.TemporaryDirectory(prefix="imgdedupe-smoke-") as tmp:
        returncode, report, output = run_scan(cli, samples, Path(tmp), args.backbone)
    print(output, end="" if output.endswith("\n") else "\n")
    found_problems = problems(returncode, report, output, expected, samples, args.backbone,
                              weights_dir)
    if found_problems:
        print(f"smoke_check: FAILED ({cli} on {samples}):", file=sys.stderr)
        for problem in found_problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"smoke_check: passed: {args.backbone} (model {report['model_id']}), no notice, "
          f"{len(expected.groups)} groups as in EXPECTED.md, "
          f"{len(expected.corrupt)} corrupt file(s) reported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
