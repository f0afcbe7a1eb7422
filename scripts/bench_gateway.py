"""Issue 17's benchmark: the S3 gateway against s3s-fs (a plain S3 server over local files) on
the same machine, loaded the same way.

Not part of scripts/test.sh. Needs a release build, s3s-fs, curl and wrk (`apt-get install
wrk`), and the s3tools venv (boto3), e.g.

    cargo build --release --bin sluice
    SLUICE_BIN=target/release/sluice .venv-s3tools/bin/python scripts/bench_gateway.py

It starts `sluice serve` (the embedded default: SQLite + the gateway-served `default`
warehouse on local disk) and `s3s-fs` on 127.0.0.1 ports in a temporary directory, puts the
same objects into both, and measures:

- **64 MiB GET**: `curl` downloading the object through a presigned URL to /dev/null, best and
  median of `--runs`, in MiB/s (and `cat` of the file itself, the disk/page-cache floor);
- **4 KiB GET**: `wrk` (2 threads, 16 connections, `--seconds`) on a presigned URL, in
  requests/s (every request's signature is verified);
- **upload memory**: 16 concurrent 100 MiB uploads with boto3, once as single PUTs and once
  as boto3's multipart `upload_file`; the peak RSS of `sluice serve` (VmHWM) and of s3s-fs.

Prints one JSON object with every figure and the ratios (gateway / s3s-fs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

KEY, SECRET = "AKIABENCHGATEWAY0001", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYBENCHGATEW"
S3S_KEY, S3S_SECRET = "s3sbenchkey", "s3sbenchsecret"
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        time.sleep(0.05)
    sys.exit(f"{what} did not start")


def s3_client(endpoint: str, key: str, secret: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=64, retries={"max_attempts": 1}),
    )


def curl_mib_s(url: str, size: int) -> float:
    out = subprocess.run(
        ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert int(out[1]) == size, out
    return size / MIB / float(out[0])


def cat_mib_s(path: Path, size: int) -> float:
    start = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(4 * MIB):
            pass
    return size / MIB / (time.perf_counter() - start)


def wrk_rps(url: str, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", url], check=True, capture_output=True, text=True
    ).stdout
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        sys.exit(f"wrk saw errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def upload_peak(client, bucket: str, prefix: str, src: Path, pid: int, multipart: bool) -> dict:
    """16 uploads of `src` at once; the server's highest RSS sampled while they ran."""
    peak = rss_mib(pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mib(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    cfg = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=4)

    def one(i: int) -> None:
        key = f"{prefix}/up-{i}.bin"
        if multipart:
            client.upload_file(str(src), bucket, key, Config=cfg)
        else:
            with open(src, "rb") as f:
                client.put_object(Bucket=bucket, Key=key, Body=f)

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(16) as ex:
            list(ex.map(one, range(16)))
    finally:
        done.set()
        sampler.join()
    return {"seconds": round(time.perf_counter() - start, 2), "peak_rss_mib": round(peak, 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seconds", type=int, default=10, help="wrk duration per server")
    ap.add_argument("--skip-uploads", action="store_true")
    args = ap.parse_args()
    binary = os.environ.get("SLUICE_BIN", "target/release/sluice")
    s3s_bin = os.environ.get("S3S_FS_BIN") or shutil.which("s3s-fs")
    if not s3s_bin:
        sys.exit("s3s-fs not found (set S3S_FS_BIN)")
    for tool in ("curl", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    root = Path(tempfile.mkdtemp(prefix="sluice-bench-gateway-"))
    procs: list[subprocess.Popen] = []
    try:
        api, s3 = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        env.update(
            SLUICE_BOOTSTRAP_ACCESS_KEY_ID=KEY,
            SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY=SECRET,
            SLUICE_LOG_LEVEL="warn",
        )
        sluice = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{api}", "--s3-listen", f"127.0.0.1:{s3}", "--data-dir", str(root / "data")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(root / "sluice.log", "wb"),
        )
        procs.append(sluice)
        s3s_port = free_port()
        (root / "s3s" / "bench").mkdir(parents=True)
        s3s = subprocess.Popen(
            [s3s_bin, "--host", "127.0.0.1", "--port", str(s3s_port), "--access-key", S3S_KEY, "--secret-key", S3S_SECRET, str(root / "s3s")],
            stdout=subprocess.DEVNULL,
            stderr=open(root / "s3s-fs.log", "wb"),
        )
        procs.append(s3s)
        wait_port(api, sluice, "sluice serve")
        wait_port(s3, sluice, "the gateway")
        wait_port(s3s_port, s3s, "s3s-fs")
        requests.get(f"http://127.0.0.1:{api}/health", timeout=5).raise_for_status()

        targets = {
            "gateway": (s3_client(f"http://127.0.0.1:{s3}", KEY, SECRET), "default", sluice.pid),
            "s3s-fs": (s3_client(f"http://127.0.0.1:{s3s_port}", S3S_KEY, S3S_SECRET), "bench", s3s.pid),
        }
        big = root / "big.bin"
        small = os.urandom(4096)
        with open(big, "wb") as f:
            for _ in range(64):
                f.write(os.urandom(MIB))
        for client, bucket, _ in targets.values():
            client.upload_file(str(big), bucket, "objects/big.bin")
            client.put_object(Bucket=bucket, Key="objects/small.bin", Body=small)

        result: dict = {"binary": binary}
        # 64 MiB GETs, interleaved so that both see the same machine.
        urls = {
            name: c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "objects/big.bin"}, ExpiresIn=3600)
            for name, (c, b, _) in targets.items()
        }
        speeds: dict[str, list[float]] = {name: [] for name in targets}
        speeds["file"] = []
        for _ in range(args.runs):
            for name, url in urls.items():
                speeds[name].append(curl_mib_s(url, 64 * MIB))
            speeds["file"].append(cat_mib_s(big, 64 * MIB))
        result["get_64mib_mib_s"] = {
            name: {"best": round(max(v), 1), "median": round(statistics.median(v), 1)} for name, v in speeds.items()
        }
        result["get_64mib_ratio_median"] = round(
            statistics.median(speeds["gateway"]) / statistics.median(speeds["s3s-fs"]), 3
        )
        # 4 KiB GETs.
        rps = {}
        for name, (c, b, _) in targets.items():
            url = c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "objects/small.bin"}, ExpiresIn=3600)
            assert requests.get(url, timeout=5).content == small
            wrk_rps(url, 2)  # warm-up
            rps[name] = wrk_rps(url, args.seconds)
        result["get_4kib_req_s"] = {k: round(v) for k, v in rps.items()}
        result["get_4kib_ratio"] = round(rps["gateway"] / rps["s3s-fs"], 3)
        # Upload memory.
        if not args.skip_uploads:
            up = root / "up.bin"
            with open(up, "wb") as f:
                for _ in range(100):
                    f.write(os.urandom(MIB))
            uploads = {}
            for name, (c, b, pid) in targets.items():
                uploads[name] = {
                    "idle_rss_mib": round(rss_mib(pid), 1),
                    "put_object": upload_peak(c, b, "put", up, pid, multipart=False),
                    "upload_file": upload_peak(c, b, "mpu", up, pid, multipart=True),
                    "lifetime_peak_rss_mib": round(peak_rss_mib(pid), 1),
                }
            result["uploads_16x100mib"] = uploads
        print(json.dumps(result, indent=2))
        return 0
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
