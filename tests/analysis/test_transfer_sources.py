"""Which transfer a correlation reads: parsing, the default, and fine-tuned transfer's cells."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xalign import dims
from xalign.analysis.correlation import transfer_cells
from xalign.analysis.sources import TransferSource, parse_transfer
from xalign.store.outputs import ResultsError


def test_transfer_texts_name_their_kind(synthetic_dir: object) -> None:
    import xalign

    store = xalign.open_store(str(synthetic_dir))
    assert parse_transfer(store, "finetune/upos") == TransferSource(name="upos", kind="finetune")
    assert parse_transfer(store, "transfer/linear") == TransferSource(name="linear")
    assert parse_transfer(store, "xnli:xnli") == TransferSource(name="xnli", task="xnli")
    assert parse_transfer(store, "transfer_scores/x:pos") == TransferSource(name="x", task="pos")
    assert parse_transfer(store, "linear") == TransferSource(name="linear")  # no fine-tuned "linear"
    with pytest.raises(ResultsError, match="expected finetune/NAME"):
        parse_transfer(store, "overlap/probe")


def test_only_probe_transfer_is_not_independent() -> None:
    assert not TransferSource(name="linear").independent
    assert "not an independent test" in TransferSource(name="linear").label()
    assert TransferSource(name="upos", kind="finetune").independent
    assert TransferSource(name="x", task="xnli").independent
    assert TransferSource(name="x", task="xnli").describe() == "transfer_scores/x:xnli"


def test_fine_tuned_transfer_pairs_each_target_with_its_overlap() -> None:
    steps, layers, languages, attributes = [0, 10], [0, 1], ["en", "fr", "es"], ["Number", "Gender"]
    rng = np.random.default_rng(0)
    overlap = xr.Dataset(
        {
            "overlap": (
                (dims.STEP, dims.LAYER, dims.ATTRIBUTE, dims.LANGUAGE, dims.LANGUAGE_OTHER),
                rng.uniform(size=(2, 2, 2, 3, 3)),
            )
        },
        coords={
            dims.STEP: steps,
            dims.LAYER: layers,
            dims.ATTRIBUTE: attributes,
            dims.LANGUAGE: languages,
            dims.LANGUAGE_OTHER: languages,
        },
    )
    accuracy = xr.DataArray(
        rng.uniform(size=(2, 1, 3)),
        dims=(dims.STEP, dims.LANGUAGE, dims.LANGUAGE_OTHER),
        coords={dims.STEP: steps, dims.LANGUAGE: ["en"], dims.LANGUAGE_OTHER: languages},
    )
    cells = transfer_cells(overlap, accuracy, source="en")
    assert cells.sizes == {dims.STEP: 2, dims.LAYER: 2, dims.LANGUAGE_OTHER: 2}
    for step in steps:
        for target in ("fr", "es"):
            pair = {dims.STEP: step, dims.LANGUAGE: "en", dims.LANGUAGE_OTHER: target}
            expected = float(accuracy.sel(pair))
            got = cells["transfer"].sel({dims.STEP: step, dims.LANGUAGE_OTHER: target}).values
            np.testing.assert_allclose(got, expected)  # the same at every layer
            mean = overlap["overlap"].sel(pair)
            np.testing.assert_allclose(
                cells["overlap"].sel({dims.STEP: step, dims.LANGUAGE_OTHER: target}).values,
                mean.mean(dims.ATTRIBUTE).values,
            )
