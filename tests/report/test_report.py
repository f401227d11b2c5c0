"""The report: figures decode as PNGs, the page shows the key numbers escaped, gaps are skipped."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from matplotlib.image import imread

from xalign import dims
from xalign.analysis.stats import Correlation
from xalign.report import CorrelationView, ReportData, figures, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STEPS = [3000, 0, 4000, 1000, 2000]  # deliberately shuffled
LAYERS = [0, 1, 2]
LANGUAGES = ["en", "fr", "de"]
ATTRIBUTES = ["Number", "Gender"]
K, D = 10, 64
DUPLICATE_REASON = "weights duplicate step 1000"
LOSS_REASON = "held-out loss 12.7 nats, 8.1 above its neighbours"


def _health(steps: list[int]) -> xr.Dataset:
    flagged = {3000: DUPLICATE_REASON, 2000: LOSS_REASON}
    loss = np.array([[8.0 - s / 1000 + 0.2 * j for j in range(len(LANGUAGES))] for s in steps])
    loss[steps.index(2000)] = 12.7
    return xr.Dataset(
        {
            dims.HELDOUT_LOSS: ((dims.STEP, dims.LANGUAGE), loss),
            "flagged": (dims.STEP, np.array([s in flagged for s in steps])),
            "reason": (dims.STEP, np.array([flagged.get(s, "") for s in steps], dtype=object)),
            "duplicate_of": (dims.STEP, np.array([1000 if s == 3000 else -1 for s in steps])),
        },
        coords={dims.STEP: steps, dims.LANGUAGE: LANGUAGES},
    )


def _overlap(steps: list[int]) -> xr.Dataset:
    shape = (len(steps), len(LAYERS), len(LANGUAGES), len(LANGUAGES), len(ATTRIBUTES))
    values = np.empty(shape)
    for a, step in enumerate(steps):
        for b, layer in enumerate(LAYERS):
            rng = np.random.default_rng(step + layer)  # the same values whatever the step order
            base = K / D + 0.5 * (step / 4000) * (layer + 1) / len(LAYERS)
            pairs = base + rng.uniform(-0.05, 0.05, size=(len(LANGUAGES), len(LANGUAGES), len(ATTRIBUTES)))
            pairs = np.round((pairs + pairs.transpose(1, 0, 2)) / 2 * K) / K  # symmetric, multiples of 1/k
            values[a, b] = pairs
    eye = np.eye(len(LANGUAGES), dtype=bool)
    values[:, :, eye, :] = np.nan
    values[:, :, 0, :, 1] = np.nan  # en has no Gender
    values[:, :, :, 0, 1] = np.nan
    return xr.Dataset(
        {"overlap": ((dims.STEP, dims.LAYER, dims.LANGUAGE, dims.LANGUAGE_OTHER, dims.ATTRIBUTE), values)},
        coords={
            dims.STEP: steps,
            dims.LAYER: LAYERS,
            dims.LANGUAGE: LANGUAGES,
            dims.LANGUAGE_OTHER: LANGUAGES,
            dims.ATTRIBUTE: ATTRIBUTES,
        },
        attrs={"k": K, "n_neurons": D, "chance": K / D},
    )


def _summary(overlap: xr.Dataset) -> xr.Dataset:
    over = [dims.LANGUAGE, dims.LANGUAGE_OTHER, dims.ATTRIBUTE]
    mean = overlap["overlap"].mean(over, skipna=True)
    n_pairs = overlap["overlap"].notnull().sum(over) // 2
    return xr.Dataset(
        {
            "mean_overlap": mean,
            "mean_jaccard": mean / (2 - mean),
            "multiple_of_chance": mean / overlap.attrs["chance"],
            "significant": ((mean - K / D) * 2).clip(0, 1),
            "n_pairs": n_pairs,
        },
        attrs={**overlap.attrs, "alpha": 0.05},
    )


def _similarity(steps: list[int]) -> xr.Dataset:
    shape = (len(steps), len(LAYERS), len(LANGUAGES))
    grow = np.array(steps, dtype=float)[:, None, None] / 4000
    layer = np.array(LAYERS, dtype=float)[None, :, None] / 10
    language = np.linspace(-0.05, 0.05, len(LANGUAGES))[None, None, :]
    data = {
        "mean_cosine": 0.4 + 0.4 * grow + layer + language + np.zeros(shape),
        "last_cosine": 0.3 + 0.3 * grow + layer + language + np.zeros(shape),
        "mean_baseline": 0.35 + 0.05 * grow + layer + np.zeros(shape),
        "last_baseline": 0.25 + 0.05 * grow + layer + np.zeros(shape),
    }
    for values in data.values():
        values[:, :, 0] = np.nan  # the reference's own row
    return xr.Dataset(
        {name: ((dims.STEP, dims.LAYER, dims.LANGUAGE), values) for name, values in data.items()},
        coords={dims.STEP: steps, dims.LAYER: LAYERS, dims.LANGUAGE: LANGUAGES},
        attrs={"reference": "en"},
    )


def _stat(method: str, r: float, low: float, high: float, n: int) -> Correlation:
    return Correlation(method=method, r=r, p_value=0.00031, ci_low=low, ci_high=high, n=n, confidence=0.95)


def _view(steps: list[int]) -> CorrelationView:
    rng = np.random.default_rng(1)
    cells = [(s, lang) for s in steps for lang in LANGUAGES[1:] for _ in LAYERS]
    x = rng.uniform(0.1, 0.6, len(cells))
    y = 0.4 + 0.8 * x + rng.normal(0, 0.05, len(cells))
    return CorrelationView(
        title="Overlap with en vs linear transfer from en (Number) <b>&</b> $5",
        x_label="overlap with en (fraction of top-k)",
        y_label="transfer accuracy from en (fraction correct)",
        x=x,
        y=y,
        point_step=np.array([s for s, _ in cells]),
        point_language=np.array([lang for _, lang in cells]),
        flagged=np.array([s in (2000, 3000) for s, _ in cells]),
        stats={
            "pearson": _stat("pearson", 0.8123, 0.7011, 0.9042, len(cells)),
            "spearman": _stat("spearman", 0.7777, 0.6512, 0.8833, len(cells)),
        },
    )


def _data(steps: list[int] = STEPS, **changes: object) -> ReportData:
    overlap = _overlap(steps)
    data = ReportData(
        title="Pythia <tiny> & co",
        model="EleutherAI/pythia-14m",
        health=_health(steps),
        overlap=overlap,
        summary=_summary(overlap),
        similarity=_similarity(steps),
        correlations=(_view(steps),),
        notes=("Excluded: <upos> in zh",),
    )
    return dataclasses.replace(data, **changes)  # type: ignore[arg-type]


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs)["src"] or "")


def _images(page: str) -> list[str]:
    parser = _Images()
    parser.feed(page)
    return parser.sources


def _check_images(out: Path) -> list[str]:
    """Every <img> of the page is a decodable, non-trivial PNG in ``out``; returns their names."""
    sources = _images((out / "index.html").read_text(encoding="utf-8"))
    for source in sources:
        assert "/" not in source
        assert not source.startswith(("http:", "https:", "file:"))
        path = out / source
        assert path.is_file(), source
        assert path.read_bytes()[:8] == PNG_SIGNATURE, source
        image = imread(path)
        assert image.shape[0] >= 300
        assert image.shape[1] >= 400, source
        assert float(np.std(image[..., :3])) > 0.01, f"{source} is blank"
    return sources


def test_every_image_of_the_page_is_a_png_in_the_folder(tmp_path: Path) -> None:
    written = write_report(_data(), tmp_path / "report")
    out = tmp_path / "report"
    assert written[-1] == out / "index.html"
    assert all(path.is_file() for path in written)
    sources = _check_images(out)
    assert sorted(sources) == sorted(p.name for p in written if p.suffix == ".png")
    assert set(sources) == {
        "overlap_vs_step.png",
        "overlap_heatmaps.png",
        "overlap_vs_transfer_0.png",
        "similarity_vs_step.png",
        "heldout_loss.png",
    }


def test_page_shows_the_key_numbers(tmp_path: Path) -> None:
    data = _data()
    write_report(data, tmp_path)
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "r = 0.81 [0.70, 0.90]" in page
    assert "ρ = 0.78 [0.65, 0.88]" in page
    assert "0.00031" in page
    # Flagged checkpoints with their reasons, in one table row each.
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    assert any("<td>3000</td>" in r and DUPLICATE_REASON in r and "<td>1000</td>" in r for r in rows)
    assert any("<td>2000</td>" in r and LOSS_REASON in r for r in rows)
    # Final (last unflagged) mean overlap and multiple of chance per layer.
    assert data.summary is not None
    last = data.summary.sel({dims.STEP: 4000})
    for layer in LAYERS:
        mean = float(last["mean_overlap"].sel({dims.LAYER: layer}))
        multiple = float(last["multiple_of_chance"].sel({dims.LAYER: layer}))
        row = next(r for r in rows if r.startswith(f"<td>{layer}</td><td>"))
        assert f"<td>{mean:.3f}</td>" in row
        assert f"<td>{multiple:.2f}×</td>" in row
    assert "step 4000" in page
    assert f"{K / D:.3g}" in page  # chance


def test_page_escapes_text_from_the_data(tmp_path: Path) -> None:
    write_report(_data(), tmp_path)
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "<tiny>" not in page
    assert "Pythia &lt;tiny&gt; &amp; co" in page
    assert "<b>" not in page
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in page
    assert "Excluded: &lt;upos&gt; in zh" in page


def test_missing_parts_are_skipped_without_broken_images(tmp_path: Path) -> None:
    data = _data(overlap=None, summary=None, similarity=None, correlations=())
    written = write_report(data, tmp_path)
    assert [p.name for p in written] == ["heldout_loss.png", "index.html"]
    assert _check_images(tmp_path) == ["heldout_loss.png"]
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "No overlap summary in this report." in page
    assert "No parallel-sentence similarity in this report." in page
    assert "No overlap-vs-transfer correlation in this report." in page


def test_empty_parts_are_skipped(tmp_path: Path) -> None:
    overlap = _overlap(STEPS).isel({dims.STEP: slice(0, 0)})
    data = _data(
        overlap=overlap,
        summary=_summary(overlap),
        similarity=_similarity(STEPS).isel({dims.STEP: slice(0, 0)}),
        health=_health(STEPS).drop_vars(dims.HELDOUT_LOSS),
    )
    written = write_report(data, tmp_path)
    assert [p.name for p in written] == ["overlap_vs_transfer_0.png", "index.html"]
    assert _check_images(tmp_path) == ["overlap_vs_transfer_0.png"]


def test_all_nan_data_does_not_crash(tmp_path: Path) -> None:
    def nan(ds: xr.Dataset) -> xr.Dataset:
        return ds.map(lambda v: xr.full_like(v, np.nan, dtype=float) if v.dtype.kind == "f" else v)

    view = _view(STEPS)
    nan_stat = Correlation(
        method="pearson", r=np.nan, p_value=np.nan, ci_low=np.nan, ci_high=np.nan, n=0, confidence=0.95
    )
    view = dataclasses.replace(
        view, x=np.full_like(view.x, np.nan), y=np.full_like(view.y, np.nan), stats={"pearson": nan_stat}
    )
    overlap = nan(_overlap(STEPS))
    data = _data(
        overlap=overlap,
        summary=nan(_summary(_overlap(STEPS))),
        similarity=nan(_similarity(STEPS)),
        health=nan(_health(STEPS)),
        correlations=(view,),
    )
    written = write_report(data, tmp_path)
    assert [p.name for p in written] == ["index.html"]
    assert _check_images(tmp_path) == []
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "r = — [—, —]" in page
    assert DUPLICATE_REASON in page


def test_step_order_does_not_change_the_figures(tmp_path: Path) -> None:
    write_report(_data(STEPS), tmp_path / "shuffled")
    write_report(_data(sorted(STEPS)), tmp_path / "sorted")
    for name in ("overlap_vs_step.png", "similarity_vs_step.png", "heldout_loss.png", "overlap_heatmaps.png"):
        shuffled = imread(tmp_path / "shuffled" / name)
        ordered = imread(tmp_path / "sorted" / name)
        assert shuffled.shape == ordered.shape
        assert np.array_equal(shuffled, ordered), name


def test_heatmaps_show_the_last_unflagged_step() -> None:
    data = _data()
    assert figures.heatmap_step(data.overlap, data.health) == (4000, False)
    health = data.health.assign(flagged=data.health["flagged"] | (data.health[dims.STEP] == 4000))
    assert figures.heatmap_step(data.overlap, health) == (1000, False)
    everything = data.health.assign(flagged=xr.full_like(data.health["flagged"], True))
    assert figures.heatmap_step(data.overlap, everything) == (4000, True)


def test_flags_are_in_step_order_with_reasons() -> None:
    assert figures.flags(_health(STEPS)) == {2000: LOSS_REASON, 3000: DUPLICATE_REASON}
    assert figures.flags(None) == {}


@pytest.mark.parametrize(
    ("value", "text"), [(0.8123, "0.812"), (float("nan"), "—"), (None, "—"), (float("inf"), "—")]
)
def test_format_number(value: float | None, text: str) -> None:
    assert figures.format_number(value) == text


def test_key_numbers_come_from_the_last_unflagged_step_with_data(tmp_path: Path) -> None:
    data = _data()
    assert data.summary is not None
    unfinished = data.summary.assign(
        mean_overlap=data.summary["mean_overlap"].where(data.summary[dims.STEP] != 4000)
    )
    write_report(dataclasses.replace(data, summary=unfinished), tmp_path)
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "<th>mean overlap, step 1000</th>" in page
    assert "<th>mean overlap, step 4000</th>" not in page


def test_probe_quality_panel_svg_copies_and_version(tmp_path: Path) -> None:
    import xalign

    rng = np.random.default_rng(0)
    shape = (2, 2, 3, 2)
    cells = ("step", "layer", "language", "attribute")
    null = rng.normal(-1.0, 0.3, shape)
    passed = rng.random(shape) < 0.5
    quality = xr.Dataset(
        {
            "test_mi": (cells, np.where(passed, 0.6, null + rng.normal(0, 0.05, shape))),
            "null_mi": (cells, null),
            "passed": (cells, passed),
        }
    )
    written = write_report(_data(probe_quality=quality), tmp_path)
    assert "probe_quality.png" in _check_images(tmp_path)
    for path in written[:-1]:
        assert path.with_suffix(".svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert f"xalign {xalign.__version__}" in page
    assert 'href="probe_quality.svg"' in page
    without = write_report(_data(), tmp_path / "none")
    assert "probe_quality.png" not in [p.name for p in without]
    assert "No probe quality gate in these results" in (tmp_path / "none" / "index.html").read_text()


def test_departures_from_the_reference_are_listed(tmp_path: Path) -> None:
    line = "extract --units: xalign used 'words', the reference 'tokens'"
    write_report(_data(departures=[line]), tmp_path / "some")
    page = (tmp_path / "some" / "index.html").read_text(encoding="utf-8")
    assert "Departures from the reference procedure" in page
    assert "xalign used &#x27;words&#x27;, the reference &#x27;tokens&#x27;" in page
    assert "--inter-layer L" in page  # what always differs
    write_report(_data(), tmp_path / "none")
    assert "Every setting of this run is the reference" in (tmp_path / "none" / "index.html").read_text()


def test_overlap_per_attribute_and_per_step_at_the_headline_layer(tmp_path: Path) -> None:
    data = _data(layer=1)
    written = write_report(data, tmp_path)
    names = [p.name for p in written]
    assert "overlap_by_attribute.png" in names
    assert "overlap_heatmaps_by_step.png" in names
    _check_images(tmp_path)
    by_attribute = figures.overlap_by_attribute(data.overlap, data.health, layer=1)
    assert by_attribute is not None
    panels = [ax for ax in by_attribute.axes if ax.get_title()]
    # en has no Gender: 3 pairs for Number, 1 for Gender.
    assert [ax.get_title() for ax in panels] == ["Number (3 pairs)", "Gender (1 pairs)"]
    # The line is the mean over unordered pairs, at the healthy steps in step order.
    assert data.overlap is not None
    number = data.overlap["overlap"].sel({dims.LAYER: 1, dims.ATTRIBUTE: "Number"}).sortby(dims.STEP)
    pairs = [("de", "en"), ("de", "fr"), ("en", "fr")]
    expected = np.mean(
        [number.sel({dims.LANGUAGE: a, dims.LANGUAGE_OTHER: b}).values for a, b in pairs], axis=0
    )
    healthy = [s not in (2000, 3000) for s in sorted(STEPS)]
    line = panels[0].lines[0]
    np.testing.assert_allclose(line.get_ydata(), expected[healthy])
    by_step = figures.overlap_heatmaps_by_step(data.overlap, data.health, layer=1)
    assert by_step is not None
    titles = [ax.get_title() for ax in by_step.axes if ax.get_title()]
    assert titles == ["step 0", "step 1000", "step 2000 (flagged)", "step 3000 (flagged)", "step 4000"]
    assert figures.overlap_by_attribute(data.overlap, data.health, layer=7) is None
    assert figures.overlap_heatmaps_by_step(data.overlap, data.health, layer=None) is None


def test_attribute_table_gives_the_mean_overlap_test(tmp_path: Path) -> None:
    overlap = _overlap(STEPS)
    p = xr.full_like(overlap["overlap"].isel({dims.LANGUAGE: 0, dims.LANGUAGE_OTHER: 0}, drop=True), 0.5)
    p.loc[{dims.STEP: 4000, dims.LAYER: 2, dims.ATTRIBUTE: "Number"}] = 0.0123
    n_probed = xr.full_like(p, 3, dtype=np.int64)
    n_passed = xr.full_like(p, 2, dtype=np.int64)
    write_report(_data(overlap=overlap.assign(mean_p=p, n_passed=n_passed, n_probed=n_probed)), tmp_path)
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    row = next(r for r in re.findall(r"<tr>(.*?)</tr>", page) if r.startswith("<td>2</td>") and "(p " in r)
    assert "0.667 (p 0.012; 2/3 passed)" in row
    assert "exact null of the mean across dependent pairs" in page


def test_fine_tuned_transfer_matrix_per_step(tmp_path: Path) -> None:
    steps = sorted(STEPS)
    values = np.full((len(steps), 1, len(LANGUAGES)), np.nan)
    values[0], values[-1] = 0.3, 0.6  # fine-tuned at two checkpoints only
    accuracy = xr.DataArray(
        values,
        dims=(dims.STEP, dims.LANGUAGE, dims.LANGUAGE_OTHER),
        coords={dims.STEP: steps, dims.LANGUAGE: ["en"], dims.LANGUAGE_OTHER: LANGUAGES},
    )
    baseline = xr.full_like(accuracy, 0.2)
    baseline[-1, 0, 1] = 0.25
    finetuned = xr.Dataset({"accuracy": accuracy, "baseline": baseline})
    figure = figures.transfer_matrices(finetuned, _health(steps))
    assert figure is not None
    assert [ax.get_title() for ax in figure.axes if ax.get_title()] == [
        "step 0\nmajority tag: 0.20",
        "step 4000\nmajority tag: 0.20–0.25",
    ]
    written = write_report(_data(finetuned=finetuned), tmp_path)
    assert "transfer_matrices.png" in [p.name for p in written]
    assert figures.transfer_matrices(finetuned.where(False), None) is None
