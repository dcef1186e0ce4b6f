"""The reader: the one causal language model that writes answers, decides yes / no / maybe, checks citations
and can rerank, below every stage that uses it.

- ``base``: what every runtime offers (``LanguageModel``: prompt, generate, option log-probabilities, sanitize)
  and the transformers runtime for folders (BioGPT, your own fine-tune);
- ``llama``: GGUF files through llama.cpp, the fast path on a CPU;
- ``packaged``: readers whose weights ship in packages (Qwen2.5-Coder-1.5B-Instruct, SmolLM2-135M), the one
  registration point for more;
- ``load``: the one place that loads the configured reader, once per process.
"""
