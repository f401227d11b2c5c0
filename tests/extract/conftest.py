"""Tiny toy checkpoints and treebanks, made once per session, for extraction tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from xalign.data import pud_files
from xalign.extract import Checkpoint, ExtractConfig, from_directory

TOY_LANGUAGES = ("en", "fr", "es")


@pytest.fixture(scope="session", autouse=True)
def _offline() -> None:
    """Tests never reach the Hugging Face hub."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BLOOM (hidden 32, 2 blocks) saved at steps 0, 2 and 4."""
    from xalign.toy import ToyConfig, train_toy_checkpoints

    out = tmp_path_factory.mktemp("toy")
    config = ToyConfig(
        steps=(0, 2, 4), hidden_size=32, n_layer=2, n_head=2, vocab_size=400, languages=TOY_LANGUAGES
    )
    train_toy_checkpoints(out, config)
    return out


@pytest.fixture(scope="session")
def checkpoints(toy_dir: Path) -> list[Checkpoint]:
    return from_directory(toy_dir)[1]


def cut_treebank(language: str, sentences: int, out: Path) -> Path:
    """The first ``sentences`` sentences of the embedded PUD file of ``language``."""
    (source,) = pud_files([language])
    blocks = source.read_text(encoding="utf-8").split("\n\n")[:sentences]
    path = out / source.name
    path.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def treebanks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("treebanks")
    return {language: cut_treebank(language, 40, out) for language in TOY_LANGUAGES}


def small_config(**changes: object) -> ExtractConfig:
    """Small chunks, so that a few dozen sentences span many of them."""
    settings: dict[str, object] = {
        "model_id": "xalign/toy-bloom",
        "chunk_words": 64,
        "chunk_sentences": 8,
        "chunk_subwords": 128,
        "batch_size": 4,
    }
    settings.update(changes)
    return ExtractConfig(**settings)  # type: ignore[arg-type]
