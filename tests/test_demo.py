"""``xalign demo`` end to end, on a reduced configuration: every stage runs, the report is
written with valid images, and a second run reuses every stage."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from xalign.cli.main import cli

pytest.importorskip("torch")

REDUCED = ["--step", "0,10,20", "--hidden-size", "32", "--blocks", "1", "--k", "4"]
LANGUAGES = ["--language", "en", "--language", "fr", "--language", "es"]


def test_demo_runs_end_to_end_and_reuses_its_stages(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = CliRunner().invoke(cli, ["demo", "--out", str(out), *REDUCED, *LANGUAGES], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    for stage in range(1, 9):
        assert f"[{stage}/8]" in first.output
    assert "reused" not in first.output
    # The held-out loss with its chance level: a uniform guess over the toy's vocabulary.
    chance = re.search(r"uniform guess over its ([\d,]+) tokens: ln (\d+) = (\d+\.\d\d)\)", first.output)
    assert chance is not None, first.output
    assert int(chance[1].replace(",", "")) == int(chance[2])
    assert float(chance[3]) == round(math.log(int(chance[2])), 2)
    # Which attributes each language has probes for (from the PUD sample's counts).
    assert re.search(r"^      en: Number", first.output, flags=re.M), first.output
    assert re.search(r"^      fr: .*Gender", first.output, flags=re.M), first.output
    # The headline reads the middle stored layer (of 0 and 1: layer 1), fixed before looking.
    assert re.search(
        r"probe quality gate at step 20, layer 1 \(the middle stored layer, fixed before looking; .*\): "
        r"\d+ of \d+ probed \(language, attribute\) cells beat their permutation null \(BH, alpha 0.05\)",
        first.output,
    )
    assert re.search(r"^(no )?evidence of alignment at step 20", first.output, flags=re.M)
    assert "Pearson r = " in first.output or "passed the gate for a correlation" in first.output
    assert re.search(
        r"fine-tuned UPOS transfer from en \(mean over the other languages\): \d\.\d\d at step 0 -> "
        r"\d\.\d\d at step 20; always predicting en's most frequent tag: \d\.\d\d",
        first.output,
    )
    assert "overlap vs fine-tuned transfer from en" in first.output
    assert re.search(r"^took \d+ min \d\d s wall, \d+ min \d\d s of CPU", first.output, flags=re.M)
    page = out / "report" / "index.html"
    assert f"report: {page}" in first.output
    images = re.findall(r'<img[^>]+src="([^"]+)"', page.read_text())
    assert {"similarity_vs_step.png", "heldout_loss.png", "transfer_matrices.png"} <= set(images)
    if "no attribute has two languages whose probes passed the gate" in first.output:
        # This tiny toy learns too little: the page says why there is no overlap plot.
        assert "No overlap to plot" in page.read_text()
    else:
        assert {"overlap_vs_step.png", "overlap_heatmaps.png"} <= set(images)
    for name in images:
        assert (out / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    second = CliRunner().invoke(
        cli, ["demo", "--out", str(out), *REDUCED, *LANGUAGES], catch_exceptions=False
    )
    assert second.exit_code == 0, second.output
    assert "reused; held-out loss" in second.output
    assert "reused; all 3 checkpoints were extracted before" in second.output
    assert "were probed before" in second.output
    kinds = (
        "overlap/probe",
        "transfer/linear",
        "finetune/upos",
        "correlation/probe-upos",
        "similarity/parallel",
    )
    for kind in kinds:
        assert f"reused analyses/{kind}" in second.output


def test_demo_without_english_starts_from_the_first_language_and_refuses_k_up_front(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["demo", "--out", str(tmp_path / "d"), "--language", "fr", "--language", "es", "--k", "500"]
    )
    assert "source language: fr (en is not among --language; the first is used)" in result.output
    assert result.exit_code == 2
    assert "k (500) exceeds the number of neurons (128) of the toy" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "d").exists()


def _headline(**changes: object) -> dict[str, object]:
    headline: dict[str, object] = {
        "layer": 2,
        "layer_choice": "as asked",
        "first_step": 0,
        "last_step": 600,
        "overlap_first": 0.08,
        "overlap_last": 0.30,
        "attributes": [
            {"attribute": "Number", "mean_overlap": 0.3, "p_value": 0.001, "p_holm": 0.002, "languages": 5},
            {"attribute": "Gender", "mean_overlap": 0.1, "p_value": 0.4, "p_holm": 0.4, "languages": 3},
        ],
        "cells_passed_last": 9,
        "cells_probed_last": 16,
        "gate": {"method": "bh", "alpha": 0.05},
        "chance": 0.078,
        "pearson_r": 0.4,
        "pearson_ci": (0.1, 0.6),
        "n_cells": 14,
    }
    return {**headline, **changes}


def test_the_headline_claims_alignment_only_where_the_mean_overlap_test_rejects() -> None:
    from xalign.demo import headline_lines

    found = headline_lines(_headline(), k=10, source="en")
    assert found[0].startswith("probe quality gate at step 600, layer 2 (as asked): 9 of 16 probed")
    assert found[1].startswith("evidence of alignment at step 600: the mean overlap of the top-10 sets")
    assert "in 1 of 2 attributes" in found[1]
    assert "Number 0.300 (3.8x chance, 5 languages, Holm p 0.002)" in found[1]
    assert "Gender" not in found[1]
    assert "overlap vs fine-tuned transfer from en, layer 2 (as asked): Pearson r = 0.40" in found[2]
    assert "bootstrap over steps and target languages" in found[2]
    transfer = {"first_step": 0, "last_step": 600, "first": 0.2, "last": 0.4, "baseline": 0.25, "own": 0.8}
    with_transfer = headline_lines(_headline(transfer=transfer), k=10, source="en")
    assert with_transfer[2] == (
        "fine-tuned UPOS transfer from en (mean over the other languages): 0.20 at step 0 -> 0.40 at "
        "step 600; always predicting en's most frequent tag: 0.25; in en itself: 0.80"
    )
    weak = [{**a, "p_holm": 0.2} for a in _headline()["attributes"]]  # type: ignore[attr-defined]
    none = headline_lines(_headline(attributes=weak), k=10, source="en")
    assert none[1].startswith("no evidence of alignment at step 600: in none of the 2 attributes")
    assert "x chance" not in none[1]
    empty = headline_lines(_headline(attributes=[], n_cells=1), k=10, source="en")
    assert empty[1].startswith("no evidence of alignment at step 600: no attribute has two languages")
    assert "too few cells (1) passed the gate" in empty[2]
