"""Stage 8, generate: grounded answers with numbered citations.

- ``evidence``: the numbered evidence sentences (fusion's selection) and the rule that text addressed to
  an AI model is data, never support;
- ``prompt``: fixed instructions, evidence quoted as data;
- ``packaged``: readers whose weights ship in packages (Qwen2.5-Coder-1.5B-Instruct, SmolLM2-135M); ``llama``: GGUF
  files through llama.cpp; ``lm``: what every runtime offers, and transformers folders (BioGPT, your own);
  ``reader``: the one place that loads the configured reader;
- ``grounding``: which written sentences a cited evidence sentence supports (the reader's yes / no, or cosine);
- ``decision``: yes / no / maybe from the reader's scores, calibrated, abstaining below a measured confidence;
- ``writer``: extractive or generative answer for one searched request; ``answer``: what ``ask`` returns.
"""
