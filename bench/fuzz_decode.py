"""Fuzz the decoder: Hypothesis byte mutations of small real JPEG, PNG, WebP
and HEIC files through decode.decode_image and preprocess.decode_for_network.

Every input must decode or raise DecodeError, within TIME_LIMIT_S. Unlike
the test (tests/reliability/test_hostile_images.py, a few hundred inputs)
this counts failures instead of stopping at the first, and prints a summary
for docs/reliability.md.

    python bench/fuzz_decode.py [--examples 12000] [--seed 1]
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.reliability.fuzzing import TIME_LIMIT_S, check, mutations, seed_files  # noqa: E402

HANG_S = 60.0  # a decode still running after this is a hang: dump and exit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=12_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    seeds = seed_files()
    outcomes: Counter[str] = Counter()
    per_format: Counter[str] = Counter()
    crashes: list[str] = []
    slow: list[tuple[str, float]] = []
    slowest = 0.0
    folder = tempfile.mkdtemp(prefix="imgdedupe-fuzz-")

    @seed(args.seed)
    @settings(max_examples=args.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=mutations(seeds), network=st.booleans())
    def run(case: tuple[str, bytes], network: bool) -> None:
        nonlocal slowest
        name, data = case
        faulthandler.dump_traceback_later(HANG_S, exit=True)
        try:
            outcome = check(folder, name, data, network)
        except Exception:  # noqa: BLE001 - counted: anything but DecodeError is a crash
            crashes.append(f"{name} ({len(data)} bytes): {traceback.format_exc(limit=3)}")
            outcomes["CRASH"] += 1
            return
        finally:
            faulthandler.cancel_dump_traceback_later()
        per_format[name.rsplit(".", 1)[1]] += 1
        outcomes["decoded" if outcome.decoded else str(outcome.reason)] += 1
        slowest = max(slowest, outcome.seconds)
        if outcome.seconds >= TIME_LIMIT_S:
            slow.append((name, outcome.seconds))

    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    total = sum(outcomes.values())
    summary = {
        "inputs": total,
        "seconds": round(elapsed, 1),
        "per_second": round(total / elapsed, 1),
        "crashes": len(crashes),
        "hangs_over_limit": len(slow),
        "time_limit_s": TIME_LIMIT_S,
        "slowest_s": round(slowest, 3),
        "outcomes": dict(outcomes.most_common()),
        "per_format": dict(per_format.most_common()),
        "seed_files": {k: len(v) for k, v in seeds.items()},
    }
    print(json.dumps(summary, indent=2))
    for crash in crashes[:20]:
        print(crash, file=sys.stderr)
    return 1 if crashes or slow else 0


if __name__ == "__main__":
    sys.exit(main())
