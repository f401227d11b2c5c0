"""A tiny toy model (hidden 32, one block, steps 0 and 10), short treebanks, and the store an
undisturbed extraction makes of them: made once, compared with by every extraction fault test."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from xalign.data import pud_files
from xalign.extract import Checkpoint, ExtractConfig, extract_store, from_directory

LANGUAGES = ("en", "fr")
CLI = "from xalign.cli.main import main; main()"
"""``python -c CLI ...`` runs the xalign command in a fresh process."""
CLI_OPTIONS = ("--chunk-words", "64", "--batch-size", "4")
"""What makes the command's configuration :func:`small_config`."""

HOLDER = """
import sys, time
from pathlib import Path
import xalign.extract.run as run
from xalign.extract import ExtractConfig, extract_store, from_directory

store, toy, ready, *files = sys.argv[1:]

def paused(*args, **kwargs):
    # The store is prepared and locked (or leased): say so, then wait to be killed.
    Path(ready).touch()
    while True:
        time.sleep(1)

run.extract_step = paused
_, checkpoints = from_directory(toy)
config = ExtractConfig(model_id="xalign/toy-bloom", chunk_words=64, batch_size=4)
extract_store(store, checkpoints, files, config)
"""
"""``python -c HOLDER STORE TOY READY TREEBANK...``: an extraction that takes the store's lock and
prepares it, touches READY, then waits to be killed."""


@contextlib.contextmanager
def paused_holder(
    store: str, toy_dir: Path, files: Sequence[str], workdir: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """:data:`HOLDER` on ``store``, once it holds the store, until the block ends (then SIGKILL)."""
    ready, log = workdir / "ready", workdir / "holder.log"
    with log.open("wb") as output:
        holder = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(HOLDER), store, str(toy_dir), str(ready), *files],
            stdout=output,
            stderr=output,
            env=env,
        )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert holder.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the first extraction never got going"
            time.sleep(0.02)
        yield holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def cli_extract(
    store: str, toy_dir: Path, files: Sequence[str], *options: str
) -> subprocess.CompletedProcess[str]:
    """``xalign [OPTIONS] extract STORE`` of ``files`` with :data:`CLI_OPTIONS`, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-c", CLI, *options, "extract", store, "--checkpoints", str(toy_dir)]
        + [arg for path in files for arg in ("--treebank", path)]
        + list(CLI_OPTIONS),
        capture_output=True,
        text=True,
        check=False,
    )


def small_config() -> ExtractConfig:
    """Chunks of 64 words, so that a couple of dozen sentences span many of them."""
    return ExtractConfig(model_id="xalign/toy-bloom", chunk_words=64, batch_size=4)


@pytest.fixture(scope="package", autouse=True)
def _offline_and_one_thread() -> Iterator[None]:
    """Tests never reach the Hugging Face hub; torch runs the toy model on one thread (several
    only contend on a busy CI machine). Child processes inherit the environment."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    mp.setenv("OMP_NUM_THREADS", "1")
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    yield
    if torch is not None and threads is not None:
        torch.set_num_threads(threads)
    mp.undo()


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from xalign.toy import ToyConfig, train_toy_checkpoints

    out = tmp_path_factory.mktemp("toy")
    config = ToyConfig(
        steps=(0, 10), hidden_size=32, n_layer=1, n_head=2, vocab_size=400, batch_size=8, languages=LANGUAGES
    )
    train_toy_checkpoints(out, config)
    return out


@pytest.fixture(scope="session")
def checkpoints(toy_dir: Path) -> list[Checkpoint]:
    return from_directory(toy_dir)[1]


@pytest.fixture(scope="session")
def treebanks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The first 16 sentences of the embedded PUD file of each language."""
    out = tmp_path_factory.mktemp("treebanks")
    paths = []
    for source in pud_files(list(LANGUAGES)):
        blocks = source.read_text(encoding="utf-8").split("\n\n")[:16]
        path = out / source.name
        path.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
        paths.append(path)
    return paths


@dataclass(frozen=True)
class Reference:
    """The undisturbed store, and how many files its extraction wrote."""

    path: Path
    writes: int


@pytest.fixture(scope="session")
def reference(
    tmp_path_factory: pytest.TempPathFactory, checkpoints: list[Checkpoint], treebanks: list[Path]
) -> Reference:
    path = tmp_path_factory.mktemp("reference") / "reference.zarr"
    with FullDisk(lambda _path, _count: False) as counter:
        extract_store(str(path), checkpoints, treebanks, small_config())
    return Reference(path=path, writes=counter.count)


class FullDisk:
    """While active, every file Zarr writes to a local store goes through ``when``.

    From the first write for which ``when(path, number)`` is true (``number`` counts the writes
    from 1), that write and every later one fail with ENOSPC, as on a full disk, until
    :meth:`free` or the end of the ``with`` block.
    """

    def __init__(self, when: Callable[[Path, int], bool]) -> None:
        self.when = when
        self.count = 0
        self.full = False
        self.failed: list[Path] = []

    def __enter__(self) -> FullDisk:
        import zarr.storage._local as local

        self._module = local
        self._original = local._put

        def put(path: Path, value: Any, exclusive: bool = False) -> int:
            self.count += 1
            if self.full or self.when(Path(path), self.count):
                self.full = True
                self.failed.append(Path(path))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return int(self._original(path, value, exclusive))

        local._put = put
        return self

    def free(self) -> None:
        self.full = False
        self.when = lambda _path, _count: False

    def __exit__(self, *exc: object) -> None:
        self._module._put = self._original
