"""PCA for the Annoy index: scikit-learn's covariance_eigh or the hand-written fit.

    python bench/bench_pca.py [--n 20000] [--dims 1280 2048] [--k 128] [--repeats 5]
                              [--no-agreement] [--no-control]

About 40 s with --no-agreement on the 2-core build machine when it is
otherwise idle; the agreement check (a float64 reference) adds more.

``ann.StreamedForest`` fits PCA on a sample of at most ``ann.PCA_SAMPLE``
(20,000) vectors of 1280 (EfficientNet-Lite0) or 2048 (ResNet50) floats and
keeps 128 components. This compares, on the same seeded float32 sample:

* hand: the fit ``ann`` had until this bench (float32 centred product,
  float64 ``numpy.linalg.eigh``, largest entry of each component positive);
* sklearn: ``PCA(n_components=k, svd_solver="covariance_eigh")``, whose
  ``_fit_full`` forms ``X.T @ X`` minus n mean mean^T in the input's dtype
  and calls ``numpy.linalg.eigh`` (through array_api_compat), then
  ``svd_flip(u_based_decision=False)``: the same sign rule;
* control: ``scipy.linalg.eigh(subset_by_index=...)`` of the covariance,
  which an earlier version used and which held the GIL for 140 ms
  (docs/performance.md): it shows the stall meter sees a GIL hold. Timed
  once (it takes seconds on a busy machine).

Measured per fit: wall time (median of ``--repeats``, the methods
interleaved), CPU time, the longest GIL hold (a thread that sleeps 1 ms in
a loop records its longest late wake-up, less the 1 ms: the window's GUI
thread would have been as late; the meter runs at real-time priority where
it may, so that other processes on the cores do not delay it; the median
over the runs of each run's longest, and the largest), and the extra
memory (tracemalloc peak, one
separate run: numpy reports its buffers to tracemalloc). Then agreement:
cosines of the principal angles between the two 128-d subspaces, |dot| of
matched components, the sample variance each subspace keeps, the
eigenvalues, sklearn's sign rule, and whether repeated sklearn fits are
bitwise equal.

The sample: unit vectors from a common mean direction (CNN features are
not centred: unrelated photos have cosines of ~0.3-0.5), a rank-256 part
with a decaying spectrum, and isotropic noise (so PCA-128 keeps most, not
all, of the energy, as with real features).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

# scipy and scikit-learn are imported where used: --import-only times the
# first import of sklearn.decomposition in a fresh process, as the app does
# it (lazily, when it first builds a forest).

Fit = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def make_sample(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 unit vectors: mean + low rank + noise."""
    rng = np.random.default_rng(seed)
    rank = 256
    mean = np.abs(rng.normal(size=dim))
    mean *= 0.45 / np.linalg.norm(mean)
    basis = np.linalg.qr(rng.normal(size=(dim, rank)))[0].T  # (rank, dim), orthonormal
    scales = 0.9 * (1.0 + np.arange(rank)) ** -0.6 / np.sqrt(rank) * 4
    latent = rng.normal(size=(n, rank)) * scales
    x = mean + latent @ basis + rng.normal(scale=0.12 / np.sqrt(dim), size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fit_hand(sample: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The hand-written fit ann.StreamedForest._fit_pca had (verbatim)."""
    mean = sample.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = sample - mean
    covariance = (centred.T @ centred).astype(np.float64)
    _, vectors = np.linalg.eigh(covariance)
    vectors = vectors[:, -k:]
    top = vectors[:, ::-1].T
    signs = np.sign(top[np.arange(len(top)), np.abs(top).argmax(axis=1)])
    return mean, (top * signs[:, None]).astype(np.float32)


def fit_sklearn(sample: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import PCA

    pca = PCA(n_components=k, svd_solver="covariance_eigh").fit(sample)
    return pca.mean_.astype(np.float32), pca.components_.astype(np.float32)


def fit_scipy_subset(sample: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The control: scipy's subset eigh, the known GIL hold."""
    import scipy.linalg

    mean = sample.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = sample - mean
    covariance = (centred.T @ centred).astype(np.float64)
    dim = len(covariance)
    _, vectors = scipy.linalg.eigh(covariance, subset_by_index=(dim - k, dim - 1))
    return mean, vectors[:, ::-1].T.astype(np.float32)


METHODS: dict[str, Fit] = {"hand": fit_hand, "sklearn": fit_sklearn,
                           "scipy subset (control)": fit_scipy_subset}


class StallMeter:
    """A thread that sleeps 1 ms at a time and keeps its longest late
    wake-up: how long another thread (the window's) could not run Python."""

    def __init__(self) -> None:
        self.worst_ms = 0.0
        self.realtime = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # Real-time priority where allowed (root on Linux): the meter then
        # runs as soon as it wakes even when other processes load the cores,
        # so what delays it is the GIL, not the scheduler. It sleeps between
        # wake-ups and waits for the GIL blocked, never spinning.
        try:
            os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO,
                                  os.sched_param(1))
            self.realtime = True
        except (AttributeError, OSError):
            pass
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            self.worst_ms = max(self.worst_ms, (now - last) * 1000 - 1.0)
            last = now

    def __enter__(self) -> StallMeter:
        self._thread.start()
        time.sleep(0.01)  # running before the work starts
        self.worst_ms = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(fit: Fit, sample: np.ndarray, k: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of all the process's threads, longest
    stall in ms) of one fit. CPU time moves less than wall time when other
    processes take the cores."""
    with StallMeter() as meter:
        start, cpu = time.perf_counter(), time.process_time()
        fit(sample, k)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return seconds, cpu, meter.worst_ms


def peak_mb(fit: Fit, sample: np.ndarray, k: int) -> float:
    tracemalloc.start()
    fit(sample, k)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def exact(sample: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The float64 reference: eigenvalues (largest first) and components."""
    x = sample.astype(np.float64)
    centred = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred / (len(x) - 1))
    return values[::-1][:k], vectors[:, ::-1][:, :k].T


def agreement(sample: np.ndarray, k: int, hand: np.ndarray, sk: np.ndarray) -> None:
    values, reference = exact(sample, k + 1)
    gap, values, reference = values[k - 1] / values[k], values[:k], reference[:k]
    centred = sample.astype(np.float64) - sample.mean(axis=0, dtype=np.float64)
    total = float((centred**2).sum())

    def kept(components: np.ndarray) -> float:
        c = components.astype(np.float64)
        return float(((centred @ c.T) ** 2).sum()) / total

    def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.svd(a.astype(np.float64) @ b.astype(np.float64).T,
                             compute_uv=False)

    print(f"  variance kept: exact {kept(reference):.9f}, hand {kept(hand):.9f}, "
          f"sklearn {kept(sk):.9f}")
    for name, a, b in (("hand vs sklearn", hand, sk), ("hand vs exact", hand, reference),
                       ("sklearn vs exact", sk, reference)):
        dots = np.abs(np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64)))
        print(f"  {name}: principal-angle cosines min {cosines(a, b).min():.9f}; "
              f"matched |dot| min {dots.min():.6f}, median {np.median(dots):.9f}, "
              f"components with |dot| < 0.999: {int((dots < 0.999).sum())}")
    from sklearn.decomposition import PCA

    pca = PCA(n_components=k, svd_solver="covariance_eigh").fit(sample)
    rel = np.abs(pca.explained_variance_ - values) / values
    print(f"  eigenvalues: sklearn (float32) vs float64 exact, max relative diff "
          f"{rel.max():.2e}; gap at k: lambda_k / lambda_(k+1) = {gap:.4f}")
    biggest = np.abs(sk).argmax(axis=1)
    positive = bool((sk[np.arange(k), biggest] > 0).all())
    same_sign = float(np.einsum("ij,ij->i", hand, sk).min())
    print(f"  sklearn sign rule (largest |entry| positive, svd_flip): {positive}; "
          f"min signed dot hand . sklearn {same_sign:.6f}")
    runs = [fit_sklearn(sample, k) for _ in range(3)]
    equal = all(np.array_equal(runs[0][1], r[1]) and np.array_equal(runs[0][0], r[0])
                for r in runs[1:])
    hands = [fit_hand(sample, k) for _ in range(2)]
    print(f"  bitwise equal over 3 sklearn fits: {equal}; over 2 hand fits: "
          f"{np.array_equal(hands[0][1], hands[1][1])}")


def machine() -> str:
    model = "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dims", type=int, nargs="+", default=[1280, 2048])
    parser.add_argument("--k", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-agreement", action="store_true")
    parser.add_argument("--control", action=argparse.BooleanOptionalAction, default=True,
                        help="also time scipy's subset eigh once (the known GIL hold)")
    parser.add_argument("--import-only", action="store_true",
                        help="time the first import of sklearn.decomposition, and exit")
    args = parser.parse_args()
    if args.import_only:
        with StallMeter() as meter:
            start = time.perf_counter()
            import sklearn.decomposition  # noqa: F401
            seconds = time.perf_counter() - start
        print(f"first import of sklearn.decomposition (numpy already imported): "
              f"{seconds:.2f} s, longest stall {meter.worst_ms:.1f} ms")
        return
    import scipy
    import sklearn

    print(f"machine: {machine()}; numpy {np.__version__}, scipy {scipy.__version__}, "
          f"scikit-learn {sklearn.__version__}; load average {os.getloadavg()[0]:.1f}")
    with StallMeter() as idle:
        time.sleep(1.0)
    print(f"stall meter, idle for 1 s: {idle.worst_ms:.1f} ms "
          f"({'real-time priority' if idle.realtime else 'normal priority'})")
    with StallMeter() as python:
        sum(i * i for i in range(3_000_000))
    print(f"stall meter, main thread running Python bytecode: {python.worst_ms:.1f} ms "
          f"(the switch interval, {sys.getswitchinterval() * 1000:.0f} ms, is the floor)")
    subprocess.run([sys.executable, __file__, "--import-only"], check=True)
    for dim in args.dims:
        sample = make_sample(args.n, dim)
        print(f"\nn={args.n} dim={dim} k={args.k} float32")
        for fit in METHODS.values():  # warm-up: BLAS threads, imports
            fit(sample[:2000, :256], args.k)
        methods = {name: fit for name, fit in METHODS.items()
                   if not name.endswith("(control)") or args.control}
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in methods}
        for _ in range(args.repeats):
            for name, fit in methods.items():
                if name.endswith("(control)") and runs[name]:
                    continue  # once is enough: seconds of GIL hold, every time
                runs[name].append(timed(fit, sample, args.k))
        print(f"  {'method':24s} {'wall s: median':>14s} {'min':>6s} {'cpu s':>6s} "
              f"{'stall ms: median':>17s} {'max':>6s} {'peak MB':>8s}")
        for name, fit in methods.items():
            wall, cpu, stalls = ([r[i] for r in runs[name]] for i in range(3))
            print(f"  {name:24s} {statistics.median(wall):14.3f} {min(wall):6.3f} "
                  f"{statistics.median(cpu):6.2f} {statistics.median(stalls):17.1f} "
                  f"{max(stalls):6.1f} {peak_mb(fit, sample, args.k):8.0f}")
        if not args.no_agreement:
            agreement(sample, args.k, fit_hand(sample, args.k)[1],
                      fit_sklearn(sample, args.k)[1])


if __name__ == "__main__":
    main()
