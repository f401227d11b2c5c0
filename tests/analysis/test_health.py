"""Checkpoint health: duplicate weights and anomalous held-out loss are flagged, ordinary training is not."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xalign import dims, open_store
from xalign.analysis.health import checkpoint_health, flagged_steps, health_from
from xalign.store.location import StoreLocation


def _loss(steps: list[int], per_language: list[list[float]]) -> xr.DataArray:
    return xr.DataArray(
        np.asarray(per_language, dtype=np.float64).T,
        dims=(dims.STEP, dims.LANGUAGE),
        coords={dims.STEP: steps, dims.LANGUAGE: ["en", "fr"][: len(per_language)]},
    )


def test_a_duplicate_checkpoint_is_flagged_and_its_original_is_not() -> None:
    # BLOOM-560m: step 500k holds the weights of step 10k.
    steps = [1000, 10000, 100000, 500000]
    fingerprints = {1000: "a", 10000: "b", 100000: "c", 500000: "b"}
    health = health_from(fingerprints, _loss(steps, [[6.0, 4.0, 3.0, 4.0]]))
    assert health["duplicate_of"].values.tolist() == [-1, -1, -1, 10000]
    assert flagged_steps(health) == [500000]
    assert health["reason"].sel(step=500000).item() == "weights duplicate step 10000"
    assert health["reason"].sel(step=10000).item() == ""


def test_a_checkpoint_with_exploding_loss_is_flagged_against_its_neighbours() -> None:
    # BLOOM-560m: step 600k has a perplexity of ~320,000 (loss 12.7 nats).
    steps = [300000, 400000, 600000, 500000]  # in the order they were added, not sorted
    health = health_from({}, _loss(steps, [[3.1, 3.0, 12.7, 2.9], [3.3, 3.2, 12.5, 3.1]]))
    assert flagged_steps(health) == [600000]
    excess = float(health["loss_excess"].sel(step=600000))
    assert excess == pytest.approx(12.6 - 3.0)
    assert "above its neighbours" in health["reason"].sel(step=600000).item()
    # The step before the broken one is compared with the broken one, and is not flagged for it.
    assert float(health["loss_excess"].sel(step=500000)) < 0


def test_ordinary_training_is_not_flagged_even_where_the_loss_falls_fast() -> None:
    # The toy run's losses: the initialisation is 1.6 nats above the next checkpoint.
    steps = [0, 50, 100, 200, 300, 400]
    health = health_from({}, _loss(steps, [[9.02, 7.39, 6.79, 5.66, 5.35, 4.32]]))
    assert flagged_steps(health) == []
    # Each checkpoint is below the one before it, so no tolerance flags it; the first is not judged.
    strict = health_from({}, _loss(steps, [[9.02, 7.39, 6.79, 5.66, 5.35, 4.32]]), loss_tolerance=0.0)
    assert flagged_steps(strict) == []
    assert np.isnan(float(strict["loss_excess"].sel(step=0)))
    assert float(strict["loss_excess"].sel(step=50)) == pytest.approx(7.39 - 9.02)


def test_unmeasured_losses_are_neither_flagged_nor_neighbours() -> None:
    steps = [0, 1, 2, 3]
    health = health_from({}, _loss(steps, [[5.0, np.nan, 9.0, 4.0]]))
    assert np.isnan(float(health["loss_excess"].sel(step=1)))
    # Step 2's neighbours are the measured steps 0 and 3.
    assert float(health["loss_excess"].sel(step=2)) == pytest.approx(4.0)
    assert flagged_steps(health) == [2]


def test_store_health_reads_fingerprints_and_per_language_losses(synthetic_store: StoreLocation) -> None:
    store = open_store(synthetic_store)
    health = checkpoint_health(store)
    assert health[dims.HELDOUT_LOSS].dims == (dims.STEP, dims.LANGUAGE)
    assert list(health[dims.LANGUAGE].values) == list(store.languages)
    assert flagged_steps(health) == []  # distinct fingerprints, falling loss
