"""The causal language models behind answers: what every runtime offers, and the transformers runtime.

A transformers causal-LM folder (BioGPT, a user's own fine-tune) or a hub id already in the local Hugging Face
cache runs here, in float32; GGUF files run through llama.cpp (``medrag.lm.llama``), and
``medrag.lm.load`` chooses between them. Nothing is ever downloaded.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from medrag.hf_cache import quiet_loading

logger = logging.getLogger(__name__)

GENERATOR_SETTING = "MEDRAG_GENERATOR_MODEL (config key generator_model)"


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 160
    temperature: float = 0.0
    """0 decodes greedily (deterministic, the default); above 0 samples."""
    top_p: float = 0.95
    """Nucleus mass kept when sampling; unused when greedy."""
    seed: int = 0
    """Seed set before sampling, so a sampled answer can be repeated."""


@dataclasses.dataclass
class Generated:
    text: str
    """The new text only: special tokens skipped, whitespace stripped."""
    tokens: int
    """New tokens produced, the stop token included."""
    seconds: float
    """Wall time of the generation, prompt evaluation included."""
    first_token_seconds: float | None = None
    """Time to the first new token (the prompt's evaluation), where the runtime reports it."""


class LanguageModel(Protocol):
    """What answers need from a causal LM, whatever runs it."""

    name: str
    context_tokens: int
    chat: bool

    def prompt(self, system: str, user: str) -> str: ...
    def sanitize(self, text: str) -> str: ...
    def count_tokens(self, text: str) -> int: ...
    def generate(self, prompt: str, settings: GenerationSettings = ...,
                 on_token: Callable[[str], None] | None = None) -> Generated: ...
    def option_log_probabilities(self, prompt: str, options: Sequence[str]) -> list[float]: ...
    def option_probabilities(self, prompt: str, options: Sequence[str]) -> list[float]: ...


def strip_special_tokens(text: str, specials: re.Pattern[str]) -> str:
    """``text`` with the tokenizer's special token strings removed (repeatedly, so fragments cannot join into
    one) and line breaks made spaces, so a role marker (``system``, ``Answer:``) can never start a line and so
    open a forged turn."""
    while (cleaned := specials.sub("", text)) != text:
        text = cleaned
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def renormalised(log_probabilities: Sequence[float]) -> list[float]:
    """Option log-probabilities as probabilities over the options alone."""
    return torch.tensor(log_probabilities, dtype=torch.float64).softmax(0).tolist()


def _streamer(tokenizer: Any, on_token: Callable[[str], None] | None) -> Any:
    """A ``TextStreamer`` that notes when the first new token arrives and hands each decoded piece of new text
    to ``on_token`` instead of printing it."""
    from transformers import TextStreamer

    class PieceStreamer(TextStreamer):
        first_token_at: float | None = None
        _calls = 0

        def put(self, value: Any) -> None:
            self._calls += 1
            if self._calls == 2:  # the first call carries the prompt
                self.first_token_at = time.perf_counter()
            super().put(value)

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text and on_token:
                on_token(text)

    return PieceStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


class TransformersModel:
    """A transformers causal LM and its tokenizer, float32 on CPU in eval mode; safe to share between threads."""

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
    def load(cls, folder: Path, name: str) -> TransformersModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

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
        """``text`` made safe to place inside a prompt (see ``strip_special_tokens``)."""
        return strip_special_tokens(text, self._specials)

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
            streamer = _streamer(self.tokenizer, on_token)
            start = time.perf_counter()
            output = self.model.generate(
                inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=settings.max_new_tokens,
                eos_token_id=self._stop_ids, pad_token_id=self._pad_id, streamer=streamer, **sampling,
            )
            seconds = time.perf_counter() - start
        new = output[0, len(ids):]
        first = None if streamer.first_token_at is None else streamer.first_token_at - start
        return Generated(self.tokenizer.decode(new, skip_special_tokens=True).strip(), len(new), seconds, first)

    def option_log_probabilities(self, prompt: str, options: Sequence[str]) -> list[float]:
        """Log-probability of each option as the start of the answer (the sum over its tokens).

        An option follows the prompt as a word follows text: after a space, unless the prompt ends in
        whitespace (a chat prompt ends in a newline, so "yes" is scored as generated; the plain layout ends in
        "Answer:", so " yes").
        """
        prompt_ids = self._encode(prompt)
        separator = "" if prompt[-1:].isspace() else " "
        encoded = [self.tokenizer(separator + option, add_special_tokens=False)["input_ids"] for option in options]
        scores = []
        with self._lock, torch.inference_mode():
            # The prompt runs once; an option of several tokens continues from its cache, then crops its own
            # tokens off again (a negative crop removes tokens).
            first = self.model(torch.tensor([prompt_ids]), use_cache=True, logits_to_keep=1)
            cache = first.cache
            for option_ids in encoded:
                logits = first.logits[0]
                if len(option_ids) > 1:
                    rest = self.model(torch.tensor([option_ids[:-1]]), cache=cache, use_cache=True).logits
                    cache.crop(1 - len(option_ids))
                    logits = torch.cat([logits, rest[0]])
                scores.append(float(logits.log_softmax(-1).gather(1, torch.tensor(option_ids)[:, None]).sum()))
        return scores

    def option_probabilities(self, prompt: str, options: Sequence[str]) -> list[float]:
        return renormalised(self.option_log_probabilities(prompt, options))
