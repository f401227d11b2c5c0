"""Two toy models of different widths, each in its own store, compared side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import xalign
from tests.extract.conftest import TOY_LANGUAGES, small_config
from xalign.analysis.finetune import FinetuneParams
from xalign.analysis.overlap import summarize
from xalign.cli.main import cli
from xalign.extract import Checkpoint, extract_store, from_directory


def _analysed(location: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]) -> str:
    extract_store(str(location), checkpoints, [treebanks[lang] for lang in TOY_LANGUAGES], small_config())
    store = xalign.open_store(str(location))
    xalign.persist(xalign.probe(store, probe="gaussian", k=3, min_count=2, n_permutations=99), store)
    # Ungated: these barely trained toys have few cells that beat their null, and the
    # comparison should have numbers to check.
    xalign.persist(xalign.overlap(store, gated=False), store)
    xalign.persist(xalign.finetune(store, FinetuneParams(epochs=1, batch_size=8)), store)
    xalign.persist(xalign.correlate(store, n_boot=200), store)
    return str(location)


@pytest.fixture(scope="module")
def two_widths(
    tmp_path_factory: pytest.TempPathFactory, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> dict[str, str]:
    from xalign.toy import ToyConfig, train_toy_checkpoints

    out = tmp_path_factory.mktemp("compare")
    narrow = ToyConfig(
        steps=(0, 2, 4), hidden_size=16, n_layer=2, n_head=2, vocab_size=400, languages=TOY_LANGUAGES
    )
    train_toy_checkpoints(out / "narrow", narrow)
    return {
        "wide": _analysed(out / "wide.zarr", checkpoints, treebanks),
        "narrow": _analysed(out / "narrow.zarr", from_directory(out / "narrow")[1], treebanks),
    }


def test_compare_lays_models_along_one_dim(two_widths: dict[str, str]) -> None:
    both = xalign.compare(two_widths)
    assert both["model"].values.tolist() == ["wide", "narrow"]
    assert both["n_neurons"].values.tolist() == [32, 16]
    np.testing.assert_allclose(both["chance"].values, [3 / 32, 3 / 16])
    assert both["layer"].values.tolist() == [1, 1]  # the middle of layers 0, 1, 2
    for label, location in two_widths.items():
        store = xalign.open_store(location)
        overlap = store.analysis("overlap", "probe").compute()
        mean = summarize(overlap)["mean_overlap"].sel(layer=1)
        assert np.isfinite(mean.values).all()
        np.testing.assert_allclose(both["mean_overlap"].sel(model=label).values, mean.values, equal_nan=True)
        np.testing.assert_allclose(
            both["multiple_of_chance"].sel(model=label).values,
            mean.values / (3 / store.n_neurons),
            equal_nan=True,
        )
        assert str(both["correlation_transfer"].sel(model=label).values) == "finetune/upos"
        assert np.isfinite(both["heldout_loss"].sel(model=label).values).all()


def test_compare_command_writes_one_report(two_widths: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(
        cli,
        [
            "compare",
            two_widths["wide"],
            two_widths["narrow"],
            "--label",
            "w",
            "--label",
            "n",
            "--out",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "w: 32 neurons, layer 1, chance 0.094" in result.output
    assert "n: 16 neurons, layer 1, chance 0.188" in result.output
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<td>w</td><td>32</td>" in page
    assert "<td>n</td><td>16</td>" in page
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(
        cli, ["compare", two_widths["wide"], "--label", "a", "--label", "b", "--out", str(out)]
    )
    assert bad.exit_code == 2
    assert "give one --label per store" in bad.output
