"""Issue 18's benchmark: PyIceberg reading a ~256 MiB Parquet table of the embedded lakehouse
through the S3 gateway (vended gateway credentials) against reading the same data from a
`file://` warehouse directly, on the same machine.

Not part of scripts/test.sh. Run it against a release build, e.g.

    cargo build --release
    SLUICE_BIN=target/release/sluice .venv/bin/python scripts/bench_lakehouse.py

It starts its own `sluice serve` on 127.0.0.1 ports (API + gateway) in a temporary data
directory, writes the same rows into two tables — one in the gateway-served `default`
warehouse, one in a plain `file` warehouse — and times full scans (`to_arrow`) of each,
`--runs` rounds, interleaved. It prints one JSON line with the best and median times and their ratios
(file:// time / gateway time: ≥ 0.7 means the gateway reads at ≥ 0.7× the speed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import requests
from pyiceberg.catalog import load_catalog

KEY, SECRET = "AKIABENCHLAKEHOUSE01", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYBENCHMARK1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rows(n: int, seed: int) -> pa.Table:
    # Random doubles: Parquet cannot compress them, so the files are about the raw size.
    return pa.table({f"c{c}": pc.random(n, initializer=seed * 8 + c) for c in range(8)})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256, help="approximate table size")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    binary = os.environ.get("SLUICE_BIN", "target/release/sluice")
    root = Path(tempfile.mkdtemp(prefix="sluice-bench-lakehouse-"))
    api, s3 = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(SLUICE_BOOTSTRAP_ACCESS_KEY_ID=KEY, SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY=SECRET, SLUICE_LOG_LEVEL="warn")
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{api}", "--s3-listen", f"127.0.0.1:{s3}", "--data-dir", str(root / "data")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "sluice.log", "wb"),
    )
    base = f"http://127.0.0.1:{api}"
    try:
        for _ in range(300):
            try:
                if requests.get(f"{base}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None:
                sys.exit(f"sluice serve exited: {(root / 'sluice.log').read_text()}")
            time.sleep(0.1)
        plain_root = root / "data" / "plain"
        r = requests.post(
            f"{base}/management/v1/warehouse",
            auth=(KEY, SECRET),
            json={"warehouse-name": "plain", "storage-profile": {"type": "file", "root": str(plain_root)}},
            timeout=30,
        )
        r.raise_for_status()
        lake = load_catalog("lake", type="rest", uri=base, credential=f"{KEY}:{SECRET}")
        plain = load_catalog("plain", type="rest", uri=base, credential=f"{KEY}:{SECRET}", warehouse="plain")
        for cat in (lake, plain):
            cat.create_namespace("bench")
        # 8 float64 columns: 64 bytes a row.
        n = args.mib * 1024 * 1024 // 64
        chunk = 1 << 20
        tables = {}
        for name, cat in (("gateway", lake), ("file", plain)):
            tables[name] = cat.create_table(("bench", "t"), schema=rows(1, 0).schema)
        for i in range(0, n, chunk):
            batch = rows(min(chunk, n - i), i)
            for t in tables.values():
                t.append(batch)
        # Interleaved (gateway, file, gateway, ...) so that both see the same machine; best
        # and median of each.
        times: dict[str, list[float]] = {"gateway": [], "file": []}
        for _ in range(args.runs):
            for name, cat in (("gateway", lake), ("file", plain)):
                t = cat.load_table(("bench", "t"))
                start = time.perf_counter()
                got = t.scan().to_arrow()
                times[name].append(time.perf_counter() - start)
                assert got.num_rows == n
        best = {k: min(v) for k, v in times.items()}
        median = {k: statistics.median(v) for k, v in times.items()}
        size = sum(p.stat().st_size for p in (root / "data" / "warehouse").rglob("*.parquet"))
        print(
            json.dumps(
                {
                    "bytes": size,
                    "runs": args.runs,
                    "gateway_seconds": {"best": round(best["gateway"], 3), "median": round(median["gateway"], 3)},
                    "file_seconds": {"best": round(best["file"], 3), "median": round(median["file"], 3)},
                    "ratio_best": round(best["file"] / best["gateway"], 3),
                    "ratio_median": round(median["file"] / median["gateway"], 3),
                    "binary": binary,
                }
            )
        )
        return 0
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
