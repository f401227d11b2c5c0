"""The reference's settings: the --preset that applies them and the list of departures."""

from __future__ import annotations

from typing import Any

import click
import pytest

from xalign.analysis.latent import LatentProbe
from xalign.analysis.probing import ProbeParams
from xalign.cli.analysis_commands import overlap
from xalign.cli.extract_commands import extract
from xalign.cli.probe_commands import probe
from xalign.extract import ExtractConfig
from xalign.reference import ALWAYS, WANG2024, departures
from xalign.treebank.corpus import CorpusOptions


def _params(command: click.Command, *args: str) -> dict[str, Any]:
    with command.make_context(command.name or "", list(args)) as ctx:
        return dict(ctx.params)


@pytest.mark.parametrize(("command", "name"), [(extract, "extract"), (probe, "probe"), (overlap, "overlap")])
def test_the_preset_sets_every_reference_choice(command: click.Command, name: str, tmp_path: Any) -> None:
    plain = _params(command, str(tmp_path))
    preset = _params(command, str(tmp_path), "--preset", "wang2024")
    for option, value in WANG2024.settings(name).items():
        assert preset[option] == value, option
    assert any(plain[option] != value for option, value in WANG2024.settings(name).items())


def test_options_given_win_over_the_preset(tmp_path: Any) -> None:
    params = _params(extract, str(tmp_path), "--preset", "wang2024", "--context", "sentence")
    assert params["context"] == "sentence"
    assert params["units"] == "tokens"


def _reference_store_provenance(**corpus_changes: Any) -> dict[str, Any]:
    extract_settings = {k: v for k, v in WANG2024.extract.items() if k in ("context", "pooling", "dtype")}
    corpus = {k: v for k, v in WANG2024.extract.items() if k not in extract_settings}
    options = CorpusOptions(**{**corpus, **corpus_changes})
    config = ExtractConfig(model_id="m", corpus=options, **extract_settings)
    return {"config": config.to_dict()}


def _reference_probe(**changes: Any) -> dict[str, Any]:
    hyper = {k: v for k, v in WANG2024.probe.items() if k in ("mc_samples", "learning_rate", "batch_size")}
    hyper |= {"max_epochs": 5000, "patience": 50, "elbo_entropy": False}
    return ProbeParams(probe=LatentProbe(**hyper), **changes).to_dict()


def test_a_run_made_with_the_preset_has_no_setting_departure() -> None:
    gate = {"applied": False, "available": True}
    assert departures(_reference_store_provenance(), _reference_probe(), {"gate": gate}) == []
    assert len(ALWAYS) >= 5


def test_each_departure_is_named_with_both_values() -> None:
    lines = departures(
        _reference_store_provenance(units="words"),
        _reference_probe(k=20),
        {"gate": {"applied": True, "available": True}},
    )
    assert "extract --units: xalign used 'words', the reference 'tokens'" in lines
    assert "probe --k: xalign used 20, the reference 50" in lines
    assert any(line.startswith("overlap --gate") for line in lines)
    gaussian = ProbeParams(probe="gaussian").to_dict()
    lines = departures(None, gaussian)
    assert lines == ["probe --probe: xalign used 'gaussian', the reference 'latent'"]
