"""Benchmark: the store's uncompressed `.npy` files against blosc2 (nnU-Net v2's format) on the same cases.

For every stored case of a store folder (`<root>/.seg_cache/store_<key>`, built by `seg fit` / `seg bench` with
`--data.cache store`): bytes on disk, seconds to write, and milliseconds to read a random 128³ window of
the image (all channels, as a training patch reads it) — `.npy` by memory map, blosc2 by slicing its
chunked array (one thread, as in a loader worker). Needs `pip install blosc2` (not a dependency of seg).

Run: python benchmarks/store_format.py STORE_FOLDER [WINDOWS_PER_CASE]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PATCH = 128
FORMATS = {  # name -> (codec, clevel, chunk edge, block edge)
    "blosc2 LZ4 c3, chunks 64³, blocks 32³": ("LZ4", 3, 64, 32),
    "blosc2 ZSTD c5, chunks 64³, blocks 32³": ("ZSTD", 5, 64, 32),
    "blosc2 LZ4HC c8, chunks 128³, blocks 64³": ("LZ4HC", 8, 128, 64),
}


def random_windows(shape: tuple[int, ...], count: int, rng: np.random.Generator) -> list[tuple[slice, ...]]:
    """`count` random 128³ windows (all channels) inside a (C, X, Y, Z) array."""
    return [(slice(None), *(slice(start, start + PATCH) for start in
                            (int(rng.integers(0, max(1, size - PATCH + 1))) for size in shape[1:])))
            for _ in range(count)]


def read_ms(array, windows: list[tuple[slice, ...]]) -> float:
    """Milliseconds per window copied out of `array` into RAM."""
    started = time.perf_counter()
    for window in windows:
        np.array(array[window])
    return 1000 * (time.perf_counter() - started) / len(windows)


def write_blosc2(image: np.ndarray, path: Path, setting: tuple[str, int, int, int]) -> float:
    """Seconds to write `image` as a blosc2 array at `path` with `setting`."""
    import blosc2

    codec, level, chunk, block = setting
    started = time.perf_counter()
    blosc2.asarray(image, urlpath=str(path), mode="w", chunks=(image.shape[0], chunk, chunk, chunk),
                   blocks=(1, block, block, block),
                   cparams={"codec": getattr(blosc2.Codec, codec), "clevel": level, "filters": [blosc2.Filter.SHUFFLE]})
    return time.perf_counter() - started


def main(folder: Path, windows_per_case: int) -> None:
    """Print, per format, MB per case, write seconds per case and ms per 128³ window (means over the cases)."""
    try:
        import blosc2
    except ImportError:
        sys.exit("blosc2 is not installed: pip install blosc2")
    blosc2.set_nthreads(1)
    rng = np.random.default_rng(0)
    images = sorted(folder.glob("*.image.npy"))
    if not images:
        sys.exit(f"no <case>.image.npy in {folder}: build a store first (seg bench ... --data.cache store)")
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ["npy (memory map)", *FORMATS]}
    with tempfile.TemporaryDirectory() as scratch:
        for path in images:
            mapped = np.load(path, mmap_mode="r")
            image = np.array(mapped)
            windows = random_windows(image.shape, windows_per_case, rng)
            started = time.perf_counter()
            np.save(Path(scratch) / "copy.npy", image)
            figures["npy (memory map)"].append((path.stat().st_size, time.perf_counter() - started,
                                                read_ms(mapped, windows)))
            for name, setting in FORMATS.items():
                target = Path(scratch) / "image.b2nd"
                seconds = write_blosc2(image, target, setting)
                figures[name].append((target.stat().st_size, seconds, read_ms(blosc2.open(str(target)), windows)))
    print(f"{len(images)} cases, {windows_per_case} windows of {PATCH}³ each, image arrays (float16)")
    print(f"{'format':<44} {'MB per case':>12} {'write s':>8} {'ms per window':>14}")
    for name, rows in figures.items():
        size, seconds, ms = (float(np.mean(column)) for column in zip(*rows))
        print(f"{name:<44} {size / 1e6:>12.1f} {seconds:>8.2f} {ms:>14.1f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 20)
