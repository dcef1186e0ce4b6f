"""A GGUF language model run by llama.cpp (``llama-cpp-python``): the fast path for readers on a CPU.

llama.cpp runs the 4-bit weights as they are, so the 1.5B reader loads in about 2 s into about 1.9 GB, where
transformers needs 90 s and 6-9 GB to dequantise the same file. It offers what the answer needs and nothing
else: the model's chat layout, sanitising of text placed in a prompt, greedy or seeded generation that streams,
and the log-probabilities of fixed options (yes / no / maybe, "does [n] support this?") after a prompt, with the
evaluated prompt kept so that questions sharing a prefix (one evidence block, many claims) pay for it once.
"""

from __future__ import annotations

import atexit
import codecs
import functools
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from medrag.lm.base import Generated, GenerationSettings, renormalised, strip_special_tokens

DEFAULT_CONTEXT = 4096
"""Context window allocated; PubMedQA evidence and the answer need under 1,500 tokens."""


@functools.cache
def _close_null_files_at_exit() -> None:
    """llama-cpp-python opens two /dev/null files at import (its loads write there) and never closes them, so
    Python prints "ResourceWarning: unclosed file" as it exits; only a model load uses them, so closing them at
    exit is safe."""
    from llama_cpp import _utils

    atexit.register(_utils.outnull_file.close)
    atexit.register(_utils.errnull_file.close)


class LlamaCppModel:
    """One GGUF model in one llama.cpp context; safe to share between threads (calls are serialised)."""

    def __init__(self, path: Path, name: str, *, context_tokens: int = DEFAULT_CONTEXT,
                 threads: int | None = None) -> None:
        import llama_cpp
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        _close_null_files_at_exit()
        self.path = Path(path)
        self.name = name
        self._llm = Llama(model_path=str(path), n_ctx=context_tokens, n_threads=threads or os.cpu_count() or 1,
                          n_batch=512, logits_all=False, verbose=False)
        self.context_tokens = self._llm.n_ctx()
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._is_stop = lambda token: bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))
        self._logits = lambda: np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self._llm.ctx, -1),
                                                     shape=(self._llm.n_vocab(),))
        specials = self._special_token_texts(llama_cpp)
        self._specials = re.compile("|".join(re.escape(t) for t in sorted(specials, key=len, reverse=True)) or "$^")
        template = self._llm.metadata.get("tokenizer.chat_template")
        self.chat = template is not None
        self._formatter = None
        if template is not None:
            eos, bos = self._llm.token_eos(), self._llm.token_bos()
            self._formatter = Jinja2ChatFormatter(template, eos_token=self._token_text(eos) if eos >= 0 else "",
                                                  bos_token=self._token_text(bos) if bos >= 0 else "")
        self._lock = threading.Lock()

    def _token_text(self, token: int) -> str:
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def _special_token_texts(self, llama_cpp) -> set[str]:
        """Control and user-defined tokens (``<|im_start|>``, ``<|endoftext|>``...): text that must never reach
        a prompt as such, or it could open a forged chat turn."""
        kinds = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        texts = {self._token_text(token) for token in range(llama_cpp.llama_vocab_n_tokens(self._vocab))
                 if llama_cpp.llama_vocab_get_attr(self._vocab, token) & kinds}
        return {text for text in texts if text.strip()}

    def prompt(self, system: str, user: str) -> str:
        """The model's chat layout where its GGUF has a template; else system, user and an ``Answer:`` cue."""
        if self._formatter is None:
            return f"{system}\n\n{user}\n\nAnswer:"
        turns = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return self._formatter(messages=turns).prompt

    def sanitize(self, text: str) -> str:
        """``text`` made safe to place inside a prompt (see ``strip_special_tokens``)."""
        return strip_special_tokens(text, self._specials)

    def _encode(self, text: str) -> list[int]:
        # special=True: the chat layout's own markers are tokens; text from users passed ``sanitize`` first.
        return self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    def _check_room(self, ids: Sequence[int], new_tokens: int) -> None:
        limit = self.context_tokens - new_tokens
        if len(ids) > limit:
            raise ValueError(f"prompt has {len(ids)} tokens; at most {limit} fit ({self.context_tokens} context "
                             f"tokens minus {new_tokens} new ones)")

    def generate(self, prompt: str, settings: GenerationSettings | None = None,
                 on_token: Callable[[str], None] | None = None) -> Generated:
        """Continue ``prompt`` until a stop token or ``settings.max_new_tokens``; ``on_token`` gets each decoded
        piece as it is produced (UTF-8 sequences split across tokens are joined first)."""
        settings = settings or GenerationSettings()
        ids = self._encode(prompt)
        self._check_room(ids, settings.max_new_tokens)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        new: list[int] = []
        first_token = None
        with self._lock:
            self._llm.set_seed(settings.seed)
            start = time.perf_counter()
            sampling = {"temp": settings.temperature, "top_p": settings.top_p if settings.temperature > 0 else 1.0,
                        "top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}
            for token in self._llm.generate(ids, **sampling):
                if first_token is None:
                    first_token = time.perf_counter() - start
                if self._is_stop(token):
                    new.append(token)
                    break
                piece = decoder.decode(self._llm.detokenize([token], prev_tokens=ids + new))
                new.append(token)
                if piece:
                    pieces.append(piece)
                    if on_token:
                        on_token(piece)
                if len(new) >= settings.max_new_tokens:
                    break
            seconds = time.perf_counter() - start
        return Generated("".join(pieces).strip(), len(new), seconds, first_token)

    def _feed(self, ids: Sequence[int]) -> np.ndarray:
        """Evaluate ``ids``, reusing the longest prefix already in the context; the next-token logits."""
        held = self._llm.input_ids[: self._llm.n_tokens]
        common = 0
        for held_token, token in zip(held, ids, strict=False):
            if held_token != token:
                break
            common += 1
        common = min(common, len(ids) - 1)  # at least one token is evaluated, so the logits are its own
        self._llm.n_tokens = common  # ``eval`` drops the cache beyond n_tokens before it decodes
        self._llm.eval(list(ids[common:]))
        return self._logits().astype(np.float64)

    def option_log_probabilities(self, prompt: str, options: Sequence[str]) -> list[float]:
        """Log-probability of each option as the start of the answer (the sum over its tokens).

        An option follows the prompt as a word follows text: after a space, unless the prompt ends in
        whitespace (a chat prompt ends in a newline, so "Yes" is scored as generated).
        """
        prompt_ids = self._encode(prompt)
        separator = "" if prompt[-1:].isspace() else " "
        encoded = [self._llm.tokenize((separator + option).encode("utf-8"), add_bos=False, special=False)
                   for option in options]
        self._check_room(prompt_ids, max(len(option) for option in encoded))
        scores = []
        with self._lock:
            for option_ids in encoded:
                total = 0.0
                for position, token in enumerate(option_ids):
                    logits = self._feed([*prompt_ids, *option_ids[:position]])
                    total += float(logits[token] - np.logaddexp.reduce(logits))
                scores.append(total)
        return scores

    def option_probabilities(self, prompt: str, options: Sequence[str]) -> list[float]:
        return renormalised(self.option_log_probabilities(prompt, options))
