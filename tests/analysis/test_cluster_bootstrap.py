"""Correlation intervals over a (step x target language) grid: the two-way cluster bootstrap
covers the truth about 95% of the time under planted dependence; resampling cells does not."""

from __future__ import annotations

import numpy as np
import pytest

from xalign.analysis.stats import correlate


def _grid(rng: np.random.Generator, steps: int, targets: int) -> tuple[np.ndarray, ...]:
    """x = a_step + b_target + e, y = a_step + u_target + f: cells of one step share a_step in both
    x and y (cells of one target share b or u). The population correlation is
    var(a) / (var(a) + 1 + var(e)) = 1 / 2.25."""
    a = rng.standard_normal(steps)
    b, u = rng.standard_normal(targets), rng.standard_normal(targets)
    step, target = np.meshgrid(np.arange(steps), np.arange(targets), indexing="ij")
    x = a[step] + b[target] + 0.5 * rng.standard_normal(step.shape)
    y = a[step] + u[target] + 0.5 * rng.standard_normal(step.shape)
    return x.ravel(), y.ravel(), step.ravel(), target.ravel()


TRUTH = 1 / 2.25


def test_cluster_intervals_cover_the_truth_and_cell_intervals_do_not() -> None:
    rng = np.random.default_rng(0)
    covered = {"clusters": 0, "cells": 0}
    replicates = 200
    for i in range(replicates):
        x, y, step, target = _grid(rng, steps=30, targets=20)
        clustered = correlate(x, y, n_boot=400, seed=i, clusters=(step, target))
        naive = correlate(x, y, n_boot=400, seed=i)
        covered["clusters"] += clustered.ci_low <= TRUTH <= clustered.ci_high
        covered["cells"] += naive.ci_low <= TRUTH <= naive.ci_high
    assert covered["clusters"] / replicates >= 0.88, covered
    assert covered["cells"] / replicates <= 0.6, covered


def test_without_an_effect_the_cluster_p_value_rejects_about_five_percent() -> None:
    rng = np.random.default_rng(1)
    rejected = 0
    replicates = 200
    for i in range(replicates):
        a, c = rng.standard_normal(30), rng.standard_normal(30)  # step effects, independent in x and y
        step, target = np.meshgrid(np.arange(30), np.arange(20), indexing="ij")
        x = a[step] + 0.5 * rng.standard_normal(step.shape)
        y = c[step] + 0.5 * rng.standard_normal(step.shape)
        clustered = correlate(
            x.ravel(), y.ravel(), n_boot=400, seed=i, clusters=(step.ravel(), target.ravel())
        )
        rejected += clustered.p_value <= 0.05
    assert rejected / replicates <= 0.12, rejected


def test_clusters_keep_r_and_say_how_they_resampled() -> None:
    rng = np.random.default_rng(2)
    x, y, step, target = _grid(rng, steps=8, targets=6)
    clustered = correlate(x, y, clusters=(step, target), n_boot=300)
    naive = correlate(x, y, n_boot=300)
    assert clustered.r == pytest.approx(naive.r)
    assert (clustered.resampled, naive.resampled) == ("clusters", "cells")
    assert clustered.ci_high - clustered.ci_low > naive.ci_high - naive.ci_low
    spearman = correlate(x, y, method="spearman", clusters=(step, target), n_boot=300)
    assert spearman.ci_low <= spearman.r <= spearman.ci_high
