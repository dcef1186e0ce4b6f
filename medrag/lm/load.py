"""The one place that loads a reader (the answer's language model) from ``generator_model``.

A GGUF file (a packaged reader of ``medrag.lm.packaged``, or any ``.gguf`` path) runs through llama.cpp:
4-bit weights as they are, the fast path on a CPU. A transformers causal-LM folder or a hub id already in the
local Hugging Face cache runs through transformers in float32. The default is the packaged
Qwen2.5-Coder-1.5B-Instruct.
"""

from __future__ import annotations

import functools
from pathlib import Path

from medrag.hf_cache import cached_snapshot, quiet_loading
from medrag.lm.base import GENERATOR_SETTING, LanguageModel, TransformersModel
from medrag.lm.llama import LlamaCppModel
from medrag.lm.packaged import DEFAULT_READER, packaged, packaged_names


def load_language_model(source: str | Path | None, cache_dir: Path, threads: int | None = None) -> LanguageModel:
    """``None``: the default packaged reader. A packaged reader's name or a ``.gguf`` file: llama.cpp (on
    ``threads`` CPU threads, default every core). A folder: transformers. Anything else: a hub id, only from the
    local Hugging Face cache.

    Loaded once per process and shared (calls are serialised inside each model): the answer writer, the
    grounding check and the reader reranker read with one copy, 1.9 GB for the default."""
    return _load(str(DEFAULT_READER if source is None else source), Path(cache_dir), threads)


@functools.cache
def _load(source: str, cache_dir: Path, threads: int | None) -> LanguageModel:
    if (model := packaged(str(source))) is not None:
        with quiet_loading():
            return LlamaCppModel(model.gguf(cache_dir), f"{model.title} (llama.cpp)", threads=threads)
    path = Path(source)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist; set {GENERATOR_SETTING} to a GGUF file, a "
                                    f"transformers folder or one of {', '.join(packaged_names())}")
        return LlamaCppModel(path, f"{path.name} (llama.cpp)", threads=threads)
    if path.is_dir():
        return TransformersModel.load(path, str(path))
    folder = cached_snapshot(str(source), GENERATOR_SETTING)
    return TransformersModel.load(folder, f"{source} (revision {folder.name[:12]} from the local Hugging Face cache)")
