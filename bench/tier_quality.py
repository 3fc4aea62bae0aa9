"""Quality of the scan's tiers, through the real scan at its defaults.

    python bench/tier_quality.py eval    [--root ../shared/eval] [--work /tmp/tq]
    python bench/tier_quality.py caltech [--root ../shared/corpus/caltech101] [--work /tmp/tq]
    python bench/tier_quality.py FOLDER --labels CSV   (any set labelled like Caltech's)

Runs ``imgdedupe scan --json`` (EfficientNet-Lite0, the default threshold;
--threshold to change it) on a fresh database under --work, unless its
report is there already (--rescan to redo it), then scores the groups:

* eval: pairwise precision and recall of all tiers together through the
  set's own score.py (--hflip ignore), and which tier each transform's
  files land in (with their base);
* caltech: photos in a wrong link (a group member and its reference that
  duplicates_known.csv does not list as one source; a same_scene pair is
  right in a similar_shot group only) of exact/near_duplicate groups and
  of any group, and recall of the known crop/edited/near_identical pairs
  (both photos in one group of any tier).

Both print the scan's phase timings, the verification's share of the cold
scan among them.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETS = {"eval": os.path.join(REPO, "..", "shared", "eval"),
        "caltech": os.path.join(REPO, "..", "shared", "corpus", "caltech101")}


def scan(folder: str, work: str, name: str, threshold: str | None, again: bool,
         keep_db: bool) -> dict:
    os.makedirs(work, exist_ok=True)
    report = os.path.join(work, f"{name}.json")
    if again or not os.path.exists(report):
        db = os.path.join(work, f"{name}.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix) and not keep_db:
                os.remove(db + suffix)
        command = [sys.executable, "-m", "imgdedupe", "scan", folder, "--db", db,
                   "--backbone", "efficientnet-lite0", "--json", report, "-q"]
        if threshold:
            command += ["--threshold", threshold]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with open(report) as handle:
        return json.load(handle)


def groups_of_members(report: dict, name) -> dict[str, set[int]]:  # noqa: ANN001
    """Each member's name (``name(path)``) -> the indices of the report's
    groups it is in (a near-duplicate group's reference may also stand in a
    similar-shot group)."""
    groups_of: dict[str, set[int]] = collections.defaultdict(set)
    for n, g in enumerate(report["groups"]):
        for m in g["members"]:
            groups_of[name(m["path"])].add(n)
    return groups_of


def links(group: dict) -> list[tuple[str, str]]:
    """The star's links: reference to each other member."""
    reference = group["members"][0]["path"]
    return [(reference, m["path"]) for m in group["members"][1:]]


def score_eval(root: str, report: dict) -> None:
    images = os.path.join(root, "images")
    groups = [[os.path.relpath(m["path"], images) for m in g["members"]]
              for g in report["groups"]]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(groups, handle)
    done = subprocess.run([sys.executable, os.path.join(root, "score.py"),
                           os.path.join(root, "groundtruth.csv"), handle.name,
                           "--hflip", "ignore", "--json"], capture_output=True, text=True,
                          check=True)
    scores = json.loads(done.stdout)
    pairwise = scores.get("pairwise", scores)
    print("dev set, all tiers:", {k: pairwise[k] for k in ("precision", "recall", "f1")
                                  if k in pairwise})
    with open(os.path.join(root, "groundtruth.csv"), newline="") as handle:
        truth = {row["path"]: row for row in csv.DictReader(handle)}
    groups_of = groups_of_members(report, lambda path: os.path.relpath(path, images))
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for path, row in truth.items():
        if not row["group_id"] or row["transform"] in ("original",):
            continue
        shared = groups_of.get(path, set()) & groups_of.get(row["base"], set())
        tier = min((report["groups"][n]["tier"] for n in shared), default="not with its base",
                   key=("exact", "near_duplicate", "similar_shot", "not with its base").index)
        table[row["transform"]][tier] += 1
    print("transform -> tier of the file when grouped with its base")
    for transform in sorted(table):
        print(f"  {transform:28s} {dict(table[transform])}")


def components(pairs: list[tuple[str, str]]) -> dict[str, int]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    roots: dict[str, int] = {}
    return {x: roots.setdefault(find(x), len(roots)) for x in list(parent)}


def score_labelled(root: str, labels: str, report: dict) -> None:
    with open(labels, newline="") as handle:
        known = list(csv.DictReader(handle))
    copies = components([(r["path_a"], r["path_b"]) for r in known if r["kind"] != "same_scene"])
    scene = {frozenset((r["path_a"], r["path_b"])) for r in known if r["kind"] == "same_scene"}
    rel = {m["path"]: os.path.relpath(m["path"], root) for g in report["groups"]
           for m in g["members"]}
    for title, tiers in (("exact + near_duplicate", {"exact", "near_duplicate"}),
                         ("any tier", {"exact", "near_duplicate", "similar_shot"})):
        bad: set[str] = set()
        wrong = []
        for g in report["groups"]:
            if g["tier"] not in tiers:
                continue
            for a, b in links(g):
                ra, rb = rel[a], rel[b]
                if ra in copies and copies[ra] == copies.get(rb):
                    continue
                if g["tier"] == "similar_shot" and frozenset((ra, rb)) in scene:
                    continue
                bad |= {ra, rb}
                wrong.append(f"{ra} ~ {rb} [{g['tier']}: {g['reason']}]")
        print(f"{title}: {len(bad)} photos in {len(wrong)} wrong links", *wrong[:30],
              sep="\n  ")
    groups_of = groups_of_members(report, rel.__getitem__)
    found = collections.Counter()
    total = collections.Counter()
    missed = []
    for r in known:
        total[r["kind"]] += 1
        if groups_of.get(r["path_a"], set()) & groups_of.get(r["path_b"], set()):
            found[r["kind"]] += 1
        elif r["kind"] != "same_scene":
            missed.append(f"{r['kind']}: {r['path_a']} ~ {r['path_b']}")
    print("known pairs found (in one group) by kind:",
          {k: f"{found[k]}/{total[k]}" for k in sorted(total)})
    main = ("crop", "edited", "near_identical")
    hit, n = sum(found[k] for k in main), sum(total[k] for k in main)
    print(f"recall of crop + edited + near_identical: {hit}/{n} = {hit / max(1, n):.3f}")
    print(f"missed known copies: {len(missed)}", *missed[:40], sep="\n  ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("set", help="eval, caltech, or a folder (with --labels)")
    ap.add_argument("--root")
    ap.add_argument("--labels", help="duplicates_known.csv-like labels for a folder")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "tier_quality"))
    ap.add_argument("--threshold")
    ap.add_argument("--rescan", action="store_true", help="scan again even if a report exists")
    ap.add_argument("--keep-db", action="store_true",
                    help="scan with the database already in --work (its vectors; not cold)")
    args = ap.parse_args()
    root = os.path.abspath(args.root or SETS.get(args.set, args.set))
    name = args.set if args.set in SETS else os.path.basename(root.rstrip("/"))
    folder = os.path.join(root, "images") if args.set == "eval" else root
    report = scan(folder, args.work, name, args.threshold, args.rescan, args.keep_db)
    stats = report["stats"]
    timings = stats["timings_s"]
    total = sum(timings.values())
    verify = timings.get("verify", 0.0)
    print(f"{report['backbone']}: {stats['files_seen']} files, {stats['embedded']} embedded, "
          f"{stats['groups']} groups "
          f"{stats.get('groups_by_tier')}, threshold {report['threshold']}; scan {total:.1f} s, "
          f"verify {verify:.1f} s = {verify / max(1e-9, total - verify):.1%} on top of the rest "
          f"({', '.join(f'{k} {v:.1f}' for k, v in timings.items())})")
    if args.set == "eval":
        score_eval(root, report)
    else:
        score_labelled(root, args.labels or os.path.join(root, "duplicates_known.csv"), report)


if __name__ == "__main__":
    main()
