"""Precision at library scale: false links on a Caltech-101 subset.

    python bench/caltech_false_links.py [--corpus ../shared/corpus/caltech101]
        [--per-class 15] [--backbone efficientnet-lite0] [--work /tmp/caltech_sub]

Copies the first N images of each of the 101 classes (distinct photos, many
of one kind per class: hard negatives), scans them with the default
settings, and counts every reference-member link in the reported groups
that is not a known same-source pair (duplicates_known.csv), per cosine.
The corpus is research-only: it is read from shared/, never committed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np

from imgdedupe.core.model import calibration


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=os.path.join("..", "shared", "corpus", "caltech101"))
    parser.add_argument("--per-class", type=int, default=15)
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--work", default="/tmp/caltech_sub")
    args = parser.parse_args()
    source = os.path.join(args.corpus, "101_ObjectCategories")
    if not os.path.isdir(args.work):
        for cls in sorted(os.listdir(source)):
            os.makedirs(os.path.join(args.work, cls))
            for name in sorted(os.listdir(os.path.join(source, cls)))[: args.per_class]:
                shutil.copy2(os.path.join(source, cls, name), os.path.join(args.work, cls, name))
    report = os.path.join(args.work + ".json")
    subprocess.run([sys.executable, "-m", "imgdedupe", "scan", args.work, "--db",
                    args.work + ".db", "--backbone", args.backbone, "--json", report, "-q"],
                   check=True, stdout=subprocess.DEVNULL)
    known = set()
    with open(os.path.join(args.corpus, "duplicates_known.csv"), newline="") as handle:
        for row in csv.DictReader(handle):
            known.add(frozenset(p.split("101_ObjectCategories/")[1]
                                for p in (row["path_a"], row["path_b"])))
    data = json.load(open(report))
    root = os.path.abspath(args.work) + os.sep
    false, true = [], []
    for group in data["groups"]:
        ref = group["members"][0]["path"][len(root):]
        for member in group["members"][1:]:
            cosine = calibration.score_to_cosine(data["backbone"], member["similarity"])
            pair = frozenset((ref, member["path"][len(root):]))
            (true if pair in known else false).append(cosine)
    images = data["stats"]["files_seen"]
    print(f"{images} images, {len(data['groups'])} groups at the default threshold "
          f"({data['backbone']})")
    print("| cosine | similarity | links to a known same-source photo | other links |")
    print("|---:|---:|---:|---:|")
    default = calibration.score_to_cosine(data["backbone"], calibration.DEFAULT_THRESHOLD)
    for cosine in sorted({default, 0.76, 0.80, 0.85, 0.90}):
        score = float(calibration.cosine_to_score(data["backbone"], cosine))
        print(f"| {cosine:.2f} | {score:.1f} | {int((np.array(true) >= cosine).sum())} | "
              f"{int((np.array(false) >= cosine).sum())} |")


if __name__ == "__main__":
    main()
