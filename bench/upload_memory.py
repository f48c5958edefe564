"""Peak memory of the app while it streams a large upload to local storage.

Starts the app under gunicorn (one worker) on a temporary instance, signs in as a tester, then
sends SIZE bytes twice: as the ticketed PUT the upload page uses with local storage, and as the
plain multipart form used without JavaScript. Prints the worker's peak RSS (VmHWM) growth for
each. Target (issue 3): under 64 MB growth for a 1 GB file.

    .venv/bin/python bench/upload_memory.py [--size-mb 1024]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
CHUNK = b"\0" * (1 << 20)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


class Body:
    """A file-like body of known length, produced as it is read (never held whole)."""

    def __init__(self, parts: list[bytes | int]) -> None:
        self.parts = parts  # bytes as they are; an int n stands for n zero bytes
        self.length = sum(p if isinstance(p, int) else len(p) for p in parts)

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        while self.parts:
            part = self.parts[0]
            if isinstance(part, int):
                n = min(part, len(CHUNK), size if size > 0 else len(CHUNK))
                self.parts[0] = part - n
                if self.parts[0] == 0:
                    self.parts.pop(0)
                if n:
                    return CHUNK[:n]
                continue
            self.parts.pop(0)
            return part
        return b""


def multipart(fields: dict[str, str], size: int, boundary: str) -> Body:
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return Body([head, size, tail])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    size = parser.parse_args().size_mb << 20

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "GREENLIGHT_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "GREENLIGHT_STORAGE_URL": Path(tmp, "storage").as_uri(),
            "GREENLIGHT_SECRET_KEY": "bench-" + "k" * 40,
            "GREENLIGHT_MAX_CLIP_BYTES": str(size + (1 << 20)),
        }
        flask = [sys.executable, "-m", "flask", "--app", "app"]
        run = {"cwd": ROOT, "env": env, "check": True, "capture_output": True}
        subprocess.run([*flask, "db", "upgrade"], **run)  # type: ignore[call-overload]
        subprocess.run([*flask, "storage", "init"], **run)  # type: ignore[call-overload]
        subprocess.run(  # type: ignore[call-overload]
            [*flask, "users", "create", "bench@example.com", "--role", "tester",
             "--password-stdin"],
            input="bench password 123\n", text=True, **{k: v for k, v in run.items()},
        )  # fmt: skip
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "1", "--timeout", "600",
             "--bind", f"127.0.0.1:{port}", "app:app"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    requests.get(f"{base}/healthz", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            worker = worker_pid(server.pid)
            browser = requests.Session()
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                              browser.get(f"{base}/login").text).group(1)  # type: ignore[union-attr]  # fmt: skip
            browser.post(f"{base}/login", data={"email": "bench@example.com",
                         "password": "bench password 123", "csrf_token": token})  # fmt: skip
            page = browser.get(f"{base}/clips/new").text
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

            baseline = peak_rss_kb(worker)
            started = browser.post(
                f"{base}/clips/direct",
                data={"title": "bench", "filename": "big.mp4", "size": str(size),
                      "csrf_token": token},
            ).json()  # fmt: skip
            begun = time.perf_counter()
            put = requests.put(
                started["upload"]["url"].replace("http://127.0.0.1:5000", base),
                data=Body([size]),
                headers={"Content-Type": "video/mp4"},
                timeout=600,
            )
            put_seconds = time.perf_counter() - begun
            if put.status_code >= 400:
                print(put.text[:2000])
            after_put = peak_rss_kb(worker)
            print(f"ticketed PUT of {size >> 20} MB: HTTP {put.status_code}, "
                  f"{size / put_seconds / (1 << 20):.0f} MB/s, "
                  f"peak RSS {baseline // 1024} → {after_put // 1024} MB "
                  f"(growth {(after_put - baseline) // 1024} MB)")  # fmt: skip

            body = multipart({"title": "bench form", "csrf_token": token}, size, "b0und")
            begun = time.perf_counter()
            form = browser.post(
                f"{base}/clips/new",
                data=body,
                headers={"Content-Type": "multipart/form-data; boundary=b0und"},
                allow_redirects=False,
                timeout=600,
            )  # fmt: skip
            form_seconds = time.perf_counter() - begun
            after_form = peak_rss_kb(worker)
            print(f"plain form POST of {size >> 20} MB: HTTP {form.status_code}, "
                  f"{size / form_seconds / (1 << 20):.0f} MB/s (includes verification), "
                  f"peak RSS {after_put // 1024} → {after_form // 1024} MB "
                  f"(growth {(after_form - after_put) // 1024} MB)")  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
