"""``xalign extract``: checkpoints x treebanks -> the activation store."""

from __future__ import annotations

from typing import Any

import click

from xalign.cli.options import corpus_options, int_list_option, parse_treebanks, preset_option, renamed_option
from xalign.cli.render import JSON_OPTION, Output

__all__ = ["extract"]


@click.command()
@click.argument("store", type=click.Path(file_okay=False))
@preset_option("extract")
@click.option("--model", "model_id", help="Hugging Face model id, e.g. bigscience/bloom-560m-intermediate.")
@int_list_option(
    "--step",
    "steps",
    help="With --model: steps of a BigScience intermediate repo -> revisions global_step<N>.",
)
@click.option(
    "--revision",
    "revisions",
    multiple=True,
    help="With --model: a revision, global_step<N> or STEP=REV (repeatable).",
)
@click.option(
    "--checkpoint",
    "local",
    multiple=True,
    metavar="STEP=DIR",
    help="A local checkpoint directory (save_pretrained) and its step (repeatable).",
)
@click.option(
    "--checkpoints",
    "manifest_dir",
    type=click.Path(exists=True, file_okay=False),
    help="A directory with a manifest.json, as `xalign toy-checkpoints` writes.",
)
@click.option(
    "--treebank",
    "treebanks",
    multiple=True,
    metavar="FILE[:LANG]",
    help="A CoNLL-U file (repeatable); its language from a UD-style name (ta_ttb-ud-test.conllu) "
    "or given after a colon (tamil.conllu:ta). Default: the embedded PUD sample.",
)
@click.option("--language", "languages", multiple=True, help="Only the embedded sample's LANG (repeatable).")
@int_list_option(
    "--layer", "layers", help="Hidden-state index to keep (0 = embeddings), e.g. 0,6,12. Default: all."
)
@click.option(
    "--pooling",
    type=click.Choice(["mean", "first", "last"]),
    default="mean",
    show_default=True,
    help="How a word's subword vectors become one: their mean (the reference), the first or the last.",
)
@click.option(
    "--context",
    type=click.Choice(["sentence", "word"]),
    default="sentence",
    show_default=True,
    help="sentence: the real sentence text in one pass; word: each word alone, the reference's mode.",
)
@click.option(
    "--dtype",
    type=click.Choice(["float16", "float32"]),
    default="float16",
    show_default=True,
    help="Stored dtype; a float16 overflow is an error that suggests float32, never a silent inf.",
)
@click.option("--keep-bits", type=click.IntRange(1, 23), help="Lossy: keep N mantissa bits (BitRound).")
@click.option("--keep-subwords", is_flag=True, help="Also store every subword vector and its word.")
@corpus_options
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Sentences (or windows of long ones) per forward pass.",
)
@click.option(
    "--max-length",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Subwords per forward pass. A longer sentence runs in overlapping windows: no word is cut.",
)
@click.option(
    "--stride",
    type=click.IntRange(min=0),
    help="Subwords of left context each later window of a long sentence repeats from the one "
    "before (as Hugging Face tokenizers' stride). Default: half of --max-length.",
)
@click.option(
    "--shard",
    is_flag=True,
    help="Store all layers of each chunk of words in one object (Zarr sharding): fewer, larger "
    "objects, for a store in a bucket.",
)
@click.option(
    "--chunk-words",
    type=click.IntRange(min=1),
    default=2048,
    show_default=True,
    help="Words per chunk: the unit of writes, of resuming, and of the analyses' reads.",
)
@click.option(
    "--loss-sentences",
    type=click.IntRange(min=0),
    default=256,
    show_default=True,
    help="Measure next-token loss on this many sentences per language (the same at every step); "
    "the rest skip the LM head. 0 for none.",
)
@click.option("--loss-all", is_flag=True, help="Measure the loss on every sentence.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
@click.option(
    "--compute-dtype",
    type=click.Choice(["float32", "bfloat16", "float16"]),
    default="float32",
    show_default=True,
    help="Dtype of the model's weights during the forward pass (bfloat16/float16 on a GPU).",
)
@click.option(
    "--scheduler",
    help="Run checkpoints as Dask tasks: local:N (a LocalCluster of N workers) or tcp://host:port.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace an existing store instead of resuming or growing it."
)
@renamed_option("--steps", "--step", why="repeatable, or a comma list: --step 1000,10000")
@renamed_option("--layers", "--layer", why="repeatable, or a comma list: --layer 0,6,12")
@JSON_OPTION
def extract(
    store: str,
    model_id: str | None,
    steps: tuple[int, ...],
    revisions: tuple[str, ...],
    local: tuple[str, ...],
    manifest_dir: str | None,
    treebanks: tuple[str, ...],
    languages: tuple[str, ...],
    layers: tuple[int, ...],
    overwrite: bool,
    device: str,
    scheduler: str | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Extract the hidden states of every checkpoint over treebanks into STORE.

    One vector per UD word (the mean of its subwords by default) for every kept layer of
    every checkpoint, plus per-sentence vectors and next-token losses. Streams: memory stays
    bounded whatever the corpus size. Rerun the same command after an interruption and it
    resumes; rerun it with new checkpoints or treebanks and the store grows.

    \b
    Examples:
      xalign toy-checkpoints --out runs/toy && xalign extract runs/toy.zarr --checkpoints runs/toy
      xalign extract runs/bloom.zarr --model bigscience/bloom-560m-intermediate \\
          --step 1000,10000,100000 --treebank UD_French-GSD/fr_gsd-ud-test.conllu
      xalign extract runs/bloom.zarr --model bigscience/bloom-560m --revision 0=main
      xalign extract runs/ref.zarr --checkpoints runs/toy --preset wang2024   # the reference's choices
      xalign --storage-option endpoint_url=http://minio.lab:9000 extract s3://lab/bloom.zarr \\
          --model bigscience/bloom-560m-intermediate --step 1000 --shard    # into a bucket
    """
    from xalign.cli.cluster import check_spec, compute_on
    from xalign.cli.progress import progress_bar
    from xalign.data import PUD_LANGUAGES, pud_files
    from xalign.extract import ExtractConfig, extract_store
    from xalign.extract.checkpoints import Checkpoint, bloom_intermediate, from_directory, parse_revision
    from xalign.parallel import LOCAL_SCHEDULERS
    from xalign.treebank.corpus import CorpusOptions

    if scheduler is not None and check_spec(scheduler) in LOCAL_SCHEDULERS:
        raise click.BadParameter(
            "extraction runs here, one checkpoint after another, or on a cluster: "
            "give local:N or tcp://host:port",
            param_hint="'--scheduler'",
        )
    checkpoints: list[Checkpoint] = []
    name = model_id or "local"
    if model_id:
        checkpoints += bloom_intermediate(model_id, steps)
        checkpoints += [parse_revision(model_id, r) for r in revisions]
    elif steps or revisions:
        raise click.UsageError("--step and --revision need --model")
    for item in local:
        step, sep, path = item.partition("=")
        if not sep or not step.isdigit():
            raise click.BadParameter(f"expected STEP=DIR, got {item!r}", param_hint="--checkpoint")
        checkpoints.append(Checkpoint(step=int(step), source=path))
    if manifest_dir:
        name, listed = from_directory(manifest_dir)
        checkpoints += listed
    if not checkpoints:
        raise click.UsageError(
            "no checkpoints: give --model with --step/--revision, --checkpoint or --checkpoints"
        )
    if languages and treebanks:
        raise click.UsageError(
            "--language selects from the embedded sample; with --treebank, pass only the files"
        )
    files, file_languages = parse_treebanks(treebanks)
    files = files or [str(f) for f in pud_files(list(languages) or list(PUD_LANGUAGES))]
    try:
        config = ExtractConfig(
            model_id=name,
            layers=layers or None,
            pooling=options["pooling"],
            context=options["context"],
            dtype=options["dtype"],
            keep_bits=options["keep_bits"],
            keep_subwords=options["keep_subwords"],
            max_length=options["max_length"],
            stride=options["stride"],
            batch_size=options["batch_size"],
            chunk_words=options["chunk_words"],
            shard=options["shard"],
            compute_dtype=options["compute_dtype"],
            loss_sentences=None if options["loss_all"] else options["loss_sentences"],
            corpus=CorpusOptions(
                label_scheme=options["label_scheme"],
                split_mode=options["split_mode"],
                seed=options["seed"],
                pos=options["pos"],
                units=options["units"],
            ),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    bar = progress_bar(unit="word", unit_scale=True, desc="extracting")
    written = [0]

    def on_progress(words: int, new_bytes: int) -> None:
        written[0] += new_bytes
        bar.update(words)
        bar.set_postfix_str(f"{written[0] / 2**20:.0f} MiB written", refresh=False)

    try:
        with compute_on(scheduler) as where:
            report = extract_store(
                store,
                checkpoints,
                files,
                config,
                device=device,
                client=where.get("client"),
                overwrite=overwrite,
                progress=on_progress,
                on_plan=lambda total: setattr(bar, "total", total),
                file_languages=file_languages,
            )
    finally:
        bar.close()
    out = Output(as_json)
    for language, coverage in report.coverage.items():
        if coverage.windowed_sentences:
            out.echo(
                f"{language}: {coverage.windowed_sentences} of {coverage.sentences} sentences are longer "
                f"than --max-length {config.max_length} subwords (longest {coverage.longest}): "
                f"run in overlapping windows with {config.window_stride} subwords of left context"
            )
        # Words with no subword are logged as warnings by the extractor, per file.
    for done in report.steps:
        losses = ", ".join(f"{lang} {loss:.3f}" for lang, loss in done.heldout_loss.items())
        out.echo(f"step {done.step}: {done.words} words, loss {losses}, weights {done.fingerprint[:12]}")
    if report.skipped:
        out.echo(f"already complete, skipped: steps {', '.join(map(str, report.skipped))}")
    out.echo(f"store: {store} (xalign info {store} for a summary)")
    out.add(store=store, **{field: getattr(report, field) for field in report.__dataclass_fields__})
    out.finish()
