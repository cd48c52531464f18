"""Load test of `tagloop serve` on loopback: C concurrent clients, each sending one crop per request.

    python -m benchmarks.serve_load [--clients 8] [--seconds 20] [--crops-per-request 1] [--readers 0] [--threads 1]

Starts a real uvicorn server (`tagloop serve`, the shipped model, no bucket) as a subprocess on
127.0.0.1, waits for /healthz, warms up, then runs the clients for ``--seconds``: an asyncio client
with one keep-alive connection per client sending pre-built multipart requests. Crops: the 55 real
phone crops of ``../shared/real-dev`` (what a shop app sends), or with ``--images ""`` held-out
renders (``benchmarks.common.test_set``: held-out fonts, some turned; harder, so the predictor's
180-degree check and deskew retries run more often). Reports p50 / p99 / mean latency per request, requests/s and
crops/s, and writes ``benchmarks/results/serve_load.json``. Client and server share the machine.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np

from benchmarks.common import save, test_set

BOUNDARY = "tagloopbench"
REAL_DEV = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "real-dev", "images")


def _multipart(crops: list[bytes]) -> bytes:
    parts = [f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"c{i}.png\"\r\n"
             f"Content-Type: image/png\r\n\r\n".encode() + c + b"\r\n" for i, c in enumerate(crops)]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _request(port: int, body: bytes) -> bytes:
    head = (f"POST /v1/read HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; "
            f"boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> int:
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    await reader.readexactly(length)
    return status


async def _client(port: int, reqs: list[bytes], start: int, until: float, out: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = start
    while time.perf_counter() < until:
        t = time.perf_counter()
        status = await _one(reader, writer, reqs[i % len(reqs)])
        (out if status == 200 else errors).append(time.perf_counter() - t)
        i += 1
    writer.close()


async def _run(port: int, reqs: list[bytes], clients: int, seconds: float) -> tuple[list, list, float]:
    lat: list[float] = []
    errors: list[float] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(_client(port, reqs, k * 7, t0 + seconds, lat, errors) for k in range(clients)))
    return lat, errors, time.perf_counter() - t0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("server did not become healthy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients (one connection each)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured duration")
    ap.add_argument("--crops-per-request", type=int, default=1, help="crops in each request")
    ap.add_argument("--readers", type=int, default=0, help="the server's --readers (0: one per core)")
    ap.add_argument("--threads", type=int, default=1, help="the server's --threads (ONNX Runtime threads per reading)")
    ap.add_argument("--images", default=REAL_DEV if os.path.isdir(REAL_DEV) else "",
                    help="folder of crops to send (default: ../shared/real-dev/images, real phone crops; "
                         "empty: held-out renders)")
    ap.add_argument("--n", type=int, default=200, help="distinct crops cycled through")
    ap.add_argument("--name", default="serve_load", help="result file name under benchmarks/results/")
    args = ap.parse_args()

    images = args.images or test_set(1000)[0]
    files = sorted(os.listdir(images))[:args.n]
    crops = [open(os.path.join(images, f), "rb").read() for f in files]
    k = args.crops_per_request
    port = _free_port()
    reqs = [_request(port, _multipart(crops[i:i + k])) for i in range(0, len(crops) - k + 1, k)]
    from recognizer.checkpoint import base_model_dir

    cmd = [sys.executable, "-m", "flows.cli", "serve", "--port", str(port), "--model", base_model_dir(),
           "--readers", str(args.readers), "--threads", str(args.threads), "--poll-s", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_healthy(port, proc)
        asyncio.run(_run(port, reqs, args.clients, 3.0))                 # warm-up, not counted
        load_before = os.getloadavg()
        lat, errors, wall = asyncio.run(_run(port, reqs, args.clients, args.seconds))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ms = np.array(lat) * 1000
    result = {"clients": args.clients, "crops_per_request": k, "seconds": round(wall, 2), "requests": len(lat),
              "errors": len(errors), "requests_per_s": round(len(lat) / wall, 1),
              "crops_per_s": round(len(lat) * k / wall, 1),
              "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
              "mean_ms": round(float(ms.mean()), 2), "server": {"readers": args.readers or os.cpu_count(),
                                                                 "threads": args.threads, "model": "shipped base model"},
              "crops": f"{len(crops)} crops of {images if args.images else 'held-out renders (benchmarks.common.test_set)'}"
                       f", median {int(np.median([len(c) for c in crops]))} bytes, cycled",
              "loadavg_1m_before": round(load_before[0], 2), "command": " ".join(["python -m benchmarks.serve_load"]
                                                                                + sys.argv[1:])}
    print(result)
    print("wrote", save(args.name, result))


if __name__ == "__main__":
    main()
