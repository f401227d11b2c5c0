"""``xalign extract`` at the command line: progress, summary, and clear errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from xalign.cli.main import cli


def test_extract_then_info(tmp_path: Path, toy_dir: Path, treebanks: dict[str, Path]) -> None:
    store = str(tmp_path / "s.zarr")
    args = ["extract", store, "--checkpoints", str(toy_dir), "--treebank", str(treebanks["en"])]
    result = CliRunner().invoke(cli, [*args, "--chunk-words", "64", "--layers", "0,2"])
    assert result.exit_code == 0, result.output
    assert "step 4:" in result.output
    assert "weights" in result.output
    again = CliRunner().invoke(cli, [*args, "--chunk-words", "64", "--layers", "0,2"])
    assert "already complete, skipped: steps 0, 2, 4" in again.output
    info = CliRunner().invoke(cli, ["info", store])
    assert info.exit_code == 0, info.output
    assert "complete" in info.output
    assert "step 3, layer 2" in info.output
    changed = CliRunner().invoke(cli, [*args, "--chunk-words", "64", "--layers", "0,1"])
    assert changed.exit_code == 1
    assert "another configuration" in changed.output
    assert "Traceback" not in changed.output


def test_extract_usage_errors(tmp_path: Path, toy_dir: Path) -> None:
    store = str(tmp_path / "s.zarr")
    missing = CliRunner().invoke(
        cli, ["extract", store, "--checkpoints", str(toy_dir), "--treebank", "nope.conllu"]
    )
    assert missing.exit_code == 2
    assert "nope.conllu" in missing.output
    assert "does not exist" in missing.output
    none = CliRunner().invoke(cli, ["extract", store])
    assert none.exit_code == 2
    assert "no checkpoints" in none.output
    bad_layer = CliRunner().invoke(
        cli, ["extract", store, "--checkpoints", str(toy_dir), "--language", "en", "--layers", "0,9"]
    )
    assert bad_layer.exit_code == 1
    assert "layer(s) [9] do not exist" in bad_layer.output
    offline = CliRunner().invoke(
        cli, ["extract", store, "--model", "bigscience/bloom-560m-intermediate", "--steps", "1000"]
    )
    assert offline.exit_code == 1
    assert "global_step1000 is not in the local Hugging Face cache" in offline.output
