"""`fiftyone-clipit bench fingerprint`: what the content fingerprint costs per GB of video.

Every stage fingerprints each source file it reads (`store.file_fingerprint`). This measures it
on files of the sizes asked, against the baseline in the same process: SHA-256 of the whole
file. Both read through the page cache; `cold` figures come first after the file is written
and `posix_fadvise(DONTNEED)` asked the kernel to drop its pages (honoured on Linux, where it
can), so they include the disk.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time

DESCRIPTION = "content fingerprint of source files: seconds per GB against hashing whole files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[64, 1024],
                        help="file sizes to measure, in MiB (default: 64 1024)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per file, warm (default 5)")
    parser.add_argument("--dir", help="where to write the test files (default: a temporary folder)")


def _drop_cache(path: str) -> None:
    with open(path, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def _whole_file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _seconds(function, path: str, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function(path)
        best = min(best, time.perf_counter() - started)
    return best


def run(args: argparse.Namespace) -> dict:
    from fiftyone_clipit.store import file_fingerprint

    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for size_mb in args.sizes_mb:
            path = os.path.join(folder, f"{size_mb}.bin")
            with open(path, "wb") as f:
                for _ in range(size_mb):
                    f.write(os.urandom(2**20))
            gb = size_mb / 1024
            figures = {"size_mb": size_mb}
            for name, function in (("fingerprint", file_fingerprint), ("whole_sha256", _whole_file_sha256)):
                os.sync()
                _drop_cache(path)
                figures[f"{name}_cold_s_per_gb"] = round(_seconds(function, path, 1) / gb, 5)
                figures[f"{name}_warm_s_per_gb"] = round(_seconds(function, path, args.repeats) / gb, 5)
            figures["warm_ratio"] = round(figures["whole_sha256_warm_s_per_gb"] / figures["fingerprint_warm_s_per_gb"], 1)
            figures["cold_ratio"] = round(figures["whole_sha256_cold_s_per_gb"] / figures["fingerprint_cold_s_per_gb"], 1)
            rows.append(figures)
    return {"files": rows}
