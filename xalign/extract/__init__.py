"""Extraction: checkpoints x treebanks -> the activation store, streamed and resumable.

torch and transformers are imported only when a checkpoint is loaded or run.
"""

from xalign.extract.checkpoints import (
    Checkpoint,
    CheckpointError,
    bloom_intermediate,
    from_directory,
    parse_revision,
)
from xalign.extract.config import ExtractConfig
from xalign.extract.encode import EncodedCorpus, encode_corpus, word_positions
from xalign.extract.run import ExtractReport, StepReport
from xalign.extract.run import extract as extract_store
from xalign.extract.sink import ExtractionError

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "EncodedCorpus",
    "ExtractConfig",
    "ExtractReport",
    "ExtractionError",
    "StepReport",
    "bloom_intermediate",
    "encode_corpus",
    "extract_store",
    "from_directory",
    "parse_revision",
    "word_positions",
]
