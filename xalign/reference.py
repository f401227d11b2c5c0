"""The reference procedure (Wang, Minervini & Ponti 2024) as settings, and xalign's departures from it.

``--preset wang2024`` on ``extract``, ``probe`` and ``overlap`` sets every choice below to the
reference's; :func:`departures` lists, for a store and its analyses, each setting that still
differs and what xalign always does differently. The report shows that list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["ALWAYS", "PRESETS", "Preset", "departures"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Preset:
    """Command -> option name -> value, and what each setting is called in the stored attrs."""

    name: str
    description: str
    extract: Mapping[str, Any] = field(default_factory=dict)
    """Option name -> value; stored in provenance ``config`` (``corpus.`` for corpus options)."""
    probe: Mapping[str, Any] = field(default_factory=dict)
    """Option name -> value; stored in the results' ``parameters`` (probe hyperparameters
    under ``probe_params``)."""
    overlap: Mapping[str, Any] = field(default_factory=dict)

    def settings(self, command: str) -> dict[str, Any]:
        """The option values of one command (``extract``, ``probe``, ``overlap``)."""
        return dict(getattr(self, command))


WANG2024: Final = Preset(
    name="wang2024",
    description="Wang, Minervini & Ponti (2024), as published with their code",
    extract={
        "context": "word",
        "pooling": "mean",
        "dtype": "float32",
        "label_scheme": "unimorph-converter",
        "pos": True,
        "units": "tokens",
        "split_mode": "lemma",
    },
    probe={
        "probe_kind": "latent",
        "criterion": "mi",
        "k": 50,
        "min_count": 20,
        "min_values": 2,
        "mc_samples": 5,
        "learning_rate": 0.01,
        "batch_size": 256,
        "max_epochs": 5000,
        "patience": 50,
        "elbo_entropy": False,
    },
    overlap={"gate": False},
)

PRESETS: Final[Mapping[str, Preset]] = {WANG2024.name: WANG2024}

_CORPUS: Final = ("label_scheme", "pos", "units", "split_mode")
_GRID: Final = {
    "probe_kind": "probe",
    "criterion": "criterion",
    "k": "k",
    "min_count": "min_count",
    "min_values": "min_values",
}

ALWAYS: Final = (
    "Layers are hidden-state indices (0 = embeddings): the reference's --inter-layer L is "
    "xalign's layer L-1.",
    "Sentences run in batches with padding and an attention mask, not one at a time; the vectors agree "
    "to floating-point rounding.",
    "A sentence longer than the model's window runs in overlapping windows; the reference skipped "
    "sentences of 512 subwords or more.",
    "The lemma split has the reference's fractions and rounding, but its lemmas are sorted and permuted "
    "by numpy's seeded generator rather than shuffled by scikit-learn in first-seen order: an equally "
    "random, different split.",
    "Greedy selection scores every candidate neuron of a step at once; the choice is the reference's "
    "up to floating-point ties.",
    "Overlap p-values are exact hypergeometric tails, not 10^6 random permutations (the same p-values "
    "without Monte-Carlo error).",
    "ud-compatibility's converter runs from its installed package with its language rules registered, "
    "as when the reference ran marry.py as a script (the installed package alone leaves them unused).",
    "Each probed cell also gets a permutation p-value and a resampled reselection (the gate and the "
    "ceiling); they do not change which neurons are selected.",
)
"""What xalign does differently whatever the settings."""


def departures(
    provenance: Mapping[str, Any] | None,
    probe_parameters: Mapping[str, Any] | None = None,
    overlap_attrs: Mapping[str, Any] | None = None,
    *,
    preset: Preset = WANG2024,
) -> list[str]:
    """``setting: xalign used X, the reference Y`` for each stored setting that differs.

    ``provenance`` is the store's root provenance (its ``config``), ``probe_parameters`` the
    probing run's ``parameters`` attr and ``overlap_attrs`` the overlap analysis' attrs; a
    missing one is not compared.
    """
    lines: list[str] = []
    config = dict((provenance or {}).get("config") or {})
    corpus = dict(config.get("corpus") or {})
    for option, wanted in preset.extract.items():
        stored = corpus.get(option) if option in _CORPUS else config.get(option)
        if provenance is not None and stored != wanted:
            lines.append(_line(f"extract --{_flag(option)}", stored, wanted))
    if probe_parameters is not None:
        hyper = dict(probe_parameters.get("probe_params") or {})
        for option, wanted in preset.probe.items():
            stored = probe_parameters.get(_GRID[option]) if option in _GRID else hyper.get(option)
            if option not in _GRID and probe_parameters.get("probe") != preset.probe.get("probe_kind"):
                continue  # another probe has other hyperparameters; the probe line says so
            if stored != wanted:
                lines.append(
                    _line(f"probe --{_flag('probe' if option == 'probe_kind' else option)}", stored, wanted)
                )
    if overlap_attrs is not None and preset.overlap.get("gate") is False and overlap_attrs.get("gate"):
        gate = overlap_attrs["gate"]
        if gate.get("applied", True) and gate.get("available", True):
            lines.append(
                "overlap --gate: xalign used only cells whose probe beat its permutation null; "
                "the reference used every cell (--no-gate)"
            )
    return lines


def _flag(option: str) -> str:
    return {"label_scheme": "labels", "split_mode": "split"}.get(option, option).replace("_", "-")


def _line(setting: str, stored: Any, wanted: Any) -> str:
    shown = {True: "on", False: "off"}
    return (
        f"{setting}: xalign used {shown.get(stored, stored) if isinstance(stored, bool) else stored!r}, "
        f"the reference {shown.get(wanted, wanted) if isinstance(wanted, bool) else wanted!r}"
    )
