"""``xalign demo`` end to end, on a reduced configuration: every stage runs, the report is
written with valid images, and a second run reuses every stage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from xalign.cli.main import cli

pytest.importorskip("torch")

REDUCED = ["--steps", "0,10,20", "--hidden-size", "32", "--layers", "1", "--k", "4"]
LANGUAGES = ["--language", "en", "--language", "fr", "--language", "es"]


def test_demo_runs_end_to_end_and_reuses_its_stages(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = CliRunner().invoke(cli, ["demo", str(out), *REDUCED, *LANGUAGES], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    for stage in range(1, 8):
        assert f"[{stage}/7]" in first.output
    assert "reused" not in first.output
    assert re.search(r"mean overlap of the top-4 neuron sets .* \(chance 0\.125", first.output)
    assert "Pearson r = " in first.output
    page = out / "report" / "index.html"
    assert f"report: {page}" in first.output
    images = re.findall(r'<img[^>]+src="([^"]+)"', page.read_text())
    assert {
        "overlap_vs_step.png",
        "overlap_heatmaps.png",
        "similarity_vs_step.png",
        "heldout_loss.png",
    } <= set(images)
    assert any(name.startswith("overlap_vs_transfer") for name in images)
    for name in images:
        assert (out / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    second = CliRunner().invoke(cli, ["demo", str(out), *REDUCED, *LANGUAGES], catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert "reused; training loss" in second.output
    assert "reused; all 3 checkpoints were extracted before" in second.output
    assert "were probed before" in second.output
    for kind in ("overlap/probe", "transfer/linear", "correlation/probe-linear", "similarity/parallel"):
        assert f"reused analyses/{kind}" in second.output


def test_demo_without_english_starts_from_the_first_language_and_refuses_k_up_front(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["demo", str(tmp_path / "d"), "--language", "fr", "--language", "es", "--k", "500"]
    )
    assert "source language: fr (en is not among --language; the first is used)" in result.output
    assert result.exit_code == 2
    assert "k (500) exceeds the number of neurons (128) of the toy" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "d").exists()
