"""Fine-tuned zero-shot transfer: a planted difference across targets, determinism, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import xalign
from tests.extract.conftest import cut_treebank, small_config
from xalign.analysis.finetune import FinetuneParams, sentence_splits
from xalign.extract import Checkpoint, extract_store

PARAMS = FinetuneParams(epochs=2, learning_rate=2e-3, batch_size=8)


def test_sentence_splits_are_seeded_shared_and_sized() -> None:
    ids = [f"s{i}" for i in range(95)]
    split = sentence_splits(ids, seed=3)
    assert split == sentence_splits(list(reversed(ids)) + ids, seed=3)  # order and repeats do not matter
    counts = {name: sum(1 for v in split.values() if v == name) for name in ("train", "dev", "test")}
    assert counts == {"train": 75, "dev": 10, "test": 10}
    assert split != sentence_splits(ids, seed=4)


def _shuffled_copy(source: Path, out: Path, seed: int = 0) -> Path:
    """The same sentences as ``source`` under the language code xx, UPOS shuffled across words."""
    lines = source.read_text(encoding="utf-8").splitlines()
    rows = [
        i
        for i, line in enumerate(lines)
        if line and not line.startswith("#") and line.split("\t")[0].isdigit()
    ]
    tags = [lines[i].split("\t")[3] for i in rows]
    rng = np.random.default_rng(seed)
    for i, tag in zip(rows, rng.permutation(tags), strict=True):
        columns = lines[i].split("\t")
        columns[3] = str(tag)
        lines[i] = "\t".join(columns)
    path = out / "xx_shuffled-ud-test.conllu"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tagged_store(tmp_path_factory: pytest.TempPathFactory, checkpoints: list[Checkpoint]) -> str:
    out = tmp_path_factory.mktemp("finetune")
    english = cut_treebank("en", 150, out)
    location = str(out / "s.zarr")
    extract_store(
        location, checkpoints[-2:], [english, _shuffled_copy(english, out)], small_config(layers=(0,))
    )
    return location


def test_a_target_with_shuffled_tags_gets_chance_accuracy(tagged_store: str) -> None:
    store = xalign.open_store(tagged_store)
    result = xalign.finetune(store, PARAMS, steps=[4]).sel(step=4).compute()
    assert result.attrs["method"] == "finetune"
    assert result.attrs["parameters"]["epochs"] == 2
    en = result.sel(language="en")
    right, shuffled = (
        float(en["accuracy"].sel(language_other="en")),
        float(en["accuracy"].sel(language_other="xx")),
    )
    baseline = float(en["baseline"].sel(language_other="en"))
    # Chance on shuffled tags is the sum of squared tag shares, about 0.15 here.
    assert shuffled < 0.3
    assert right > max(baseline, shuffled) + 0.15
    assert int(en["n_test"].sel(language_other="en")) == int(en["n_test"].sel(language_other="xx")) > 100
    assert 1 <= int(en["best_epoch"]) <= 2
    assert float(en["cpu_seconds"]) > 0


def test_lora_adapters_learn_the_tags_too(tagged_store: str) -> None:
    store = xalign.open_store(tagged_store)
    params = FinetuneParams(epochs=2, learning_rate=1e-2, batch_size=8, lora=True, lora_rank=4)
    result = xalign.finetune(store, params, steps=[4]).sel(step=4, language="en").compute()
    assert result.attrs["parameters"]["lora"] is True
    right = float(result["accuracy"].sel(language_other="en"))
    assert right > float(result["accuracy"].sel(language_other="xx")) + 0.1
    full = xalign.finetune(store, PARAMS, steps=[4]).sel(step=4, language="en").compute()
    assert right != float(full["accuracy"].sel(language_other="en"))


_CHILD = "from xalign.cli.main import main; main()"


def test_sigkill_then_rerun_gives_the_identical_analysis(tagged_store: str, tmp_path: Path) -> None:
    import shutil

    killed = tmp_path / "killed.zarr"
    shutil.copytree(tagged_store, killed)
    command = ["finetune", str(killed), "--epochs", "2", "--learning-rate", "0.002", "--batch-size", "8"]
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *command],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    status = killed / "analyses" / "finetune" / "upos" / "status" / "c"
    deadline = time.monotonic() + 300
    while child.poll() is None and time.monotonic() < deadline:
        if status.exists() and any(status.iterdir()):
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    store = xalign.open_store(str(killed))
    done = xalign.persist(xalign.finetune(store, PARAMS), store)
    assert done.report is not None
    assert done.report.slabs_already_done == 1
    reference = xalign.finetune(xalign.open_store(tagged_store), PARAMS).compute()
    stored = done.result.compute()
    for name in ("accuracy", "baseline", "n_test", "dev_accuracy", "best_epoch"):
        np.testing.assert_array_equal(stored[name].values, reference[name].values, err_msg=name)


def _hub_cache(root: Path, repo: str, revisions: dict[str, Path]) -> Path:
    """A Hugging Face hub cache (its on-disk layout) holding ``revisions`` of ``repo``."""
    import shutil

    folder = root / ("models--" + repo.replace("/", "--"))
    for number, (revision, source) in enumerate(revisions.items()):
        commit = f"{number + 1:040x}"
        shutil.copytree(source, folder / "snapshots" / commit)
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / revision).write_text(commit)
    return root


def test_hub_revisions_are_fine_tuned_from_the_cache(
    tmp_path: Path, toy_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    revisions = {"global_step2": toy_dir / "step_2", "global_step4": toy_dir / "step_4"}
    from huggingface_hub import constants

    # huggingface_hub reads its environment once, at import: set what it read.
    cache = _hub_cache(tmp_path / "hub", "xalign/toy-bloom", revisions)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    checkpoints = [
        Checkpoint(step=int(r.removeprefix("global_step")), source="xalign/toy-bloom", revision=r)
        for r in revisions
    ]
    english = cut_treebank("en", 60, tmp_path)
    location = str(tmp_path / "hub.zarr")
    extract_store(location, checkpoints, [english], small_config(layers=(0,)))
    store = xalign.open_store(location)
    assert store.revisions == {2: "global_step2", 4: "global_step4"}
    # The provenance says where the tokenizer came from, not where the cache put it.
    assert store.provenance["tokenizer"] == "xalign/toy-bloom@global_step2"
    assert store.provenance["tokenizer_source"] == {
        "model_id": "xalign/toy-bloom",
        "revision": "global_step2",
        "commit": f"{1:040x}",
    }
    assert str(tmp_path / "hub") not in str(store.provenance)
    result = xalign.finetune(store, PARAMS, steps=[4]).sel(step=4, language="en").compute()
    assert 0 < float(result["accuracy"].sel(language_other="en")) <= 1
    # The same model loaded from its directory gives the same result.
    local = xalign.finetune(
        store, PARAMS, steps=[4], checkpoints={4: Checkpoint(step=4, source=str(toy_dir / "step_4"))}
    )
    np.testing.assert_array_equal(
        local.sel(step=4, language="en")["accuracy"].values, result["accuracy"].values
    )
