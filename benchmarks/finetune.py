"""Fine-tuned transfer: CPU cost per checkpoint on the toy, and an estimate for BLOOM-560m.

Part of the suite (``python -m benchmarks --only finetune``; alone: ``python -m benchmarks.finetune``).

1. **Toy, measured.** A toy BLOOM (hidden 128, 4 blocks, as ``xalign demo``; untrained weights,
   since the cost does not depend on them) is extracted over the embedded PUD sample and then
   fine-tuned for UPOS on English (3 epochs, one torch thread) and tested on every language:
   :func:`xalign.analysis.finetune.finetune_slab`, the task ``xalign finetune`` runs per
   checkpoint. Its CPU seconds are set beside the extraction of the same checkpoint (the other
   per-checkpoint cost of a study).
2. **BLOOM-560m, estimated.** One optimiser step (AdamW, a batch of 16 sentences of 48 subwords,
   about a PUD sentence) and one evaluation batch of a randomly initialised model of
   BLOOM-560m's shape (24 blocks, hidden 1024, vocabulary 250,880) are timed on this CPU, and
   multiplied by the steps of the toy's schedule (the same sentences: 400 train sentences, 3
   epochs, 8 test sets of 50 sentences). ``--quick`` skips it.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

from benchmarks.common import Row, cpu_seconds, growth_row

NAME = "finetune"


def _toy(quick: bool, out: Path) -> tuple[float, float]:
    """CPU seconds to extract one toy checkpoint, and to fine-tune and test it."""
    import xalign
    from xalign.analysis.finetune import FinetuneParams, finetune_slab
    from xalign.data import PUD_LANGUAGES, pud_files
    from xalign.extract import ExtractConfig, extract_store, from_directory
    from xalign.toy import ToyConfig, train_toy_checkpoints

    languages = ("en", "fr", "es") if quick else PUD_LANGUAGES
    config = ToyConfig(steps=(0,), languages=languages)
    train_toy_checkpoints(out / "toy", config)
    name, checkpoints = from_directory(out / "toy")
    started = cpu_seconds()
    extract_store(
        str(out / "toy.zarr"),
        checkpoints,
        pud_files(list(languages) if languages else None),
        ExtractConfig(model_id=name),
    )
    extraction = cpu_seconds() - started
    store = xalign.open_store(str(out / "toy.zarr"))
    started = cpu_seconds()
    finetune_slab(store, 0, ["en"], list(store.languages), FinetuneParams(epochs=1 if quick else 3))
    return extraction, cpu_seconds() - started


def _bloom_560m_step() -> tuple[float, float]:
    """CPU seconds of one training step and one evaluation batch of a BLOOM-560m-shaped tagger."""
    import torch
    from transformers import BloomConfig, BloomForTokenClassification

    torch.manual_seed(0)
    config = BloomConfig(vocab_size=250_880, hidden_size=1024, n_layer=24, n_head=16, num_labels=17)
    model = BloomForTokenClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    ids = torch.randint(0, config.vocab_size, (16, 48))
    labels = torch.randint(0, 17, (16, 48))
    model.train()
    model(input_ids=ids, labels=labels).loss.backward()  # warm-up: allocations
    optimizer.step()
    optimizer.zero_grad()
    started = cpu_seconds()
    model(input_ids=ids, labels=labels).loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    train = cpu_seconds() - started
    model.eval()
    started = cpu_seconds()
    with torch.no_grad():
        model(input_ids=ids)
    return train, cpu_seconds() - started


def run(quick: bool) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="xalign-bench-finetune-") as tmp:
        extraction, finetuning = _toy(quick, Path(tmp))
    rows = [
        growth_row(
            NAME,
            "CPU s per checkpoint, toy (hidden 128, 4 blocks): fine-tune on en + test on every language",
            finetuning,
            extraction,
            "s",
            "fine-tuning (UPOS, 1 thread, "
            + ("1 epoch, 3 languages" if quick else "3 epochs, 400 train sentences, 8 languages")
            + ") over extracting the same checkpoint's hidden states",
        )
    ]
    if not quick:
        train, evaluate = _bloom_560m_step()
        epochs, batch, train_sentences, test_sentences = 3, 16, 400, 8 * 50 + 50
        steps = epochs * math.ceil(train_sentences / batch)
        evaluations = epochs * math.ceil(50 / batch) + math.ceil(test_sentences / batch)
        estimate = steps * train + evaluations * evaluate
        rows.append(
            growth_row(
                NAME,
                "CPU s per checkpoint, BLOOM-560m shape (estimated from one timed step)",
                estimate,
                finetuning,
                "s",
                f"estimate for BLOOM-560m over the toy's measured cost; one AdamW step of 16x48 subwords "
                f"took {train:.1f} CPU s and an evaluation batch {evaluate:.1f} s; {steps} steps and "
                f"{evaluations} evaluation batches per checkpoint (the toy's schedule)",
            )
        )
    return rows


if __name__ == "__main__":
    started = time.time()
    for row in run(quick=False):
        print(row)
    print(f"wall {time.time() - started:.0f} s")
