"""Stage 8, generate: grounded answers with numbered citations.

- ``evidence``: the numbered evidence sentences (fusion's selection) and the rule that text addressed to
  an AI model is data, never support;
- ``prompt``: fixed instructions, evidence quoted as data;
- ``lm``: the causal language model (SmolLM2 from its package, BioGPT from a local folder or cache);
- ``grounding``: which written sentences a cited evidence sentence supports;
- ``decision``: yes / no / maybe with a confidence; ``train_decision`` trains its model;
- ``writer``: extractive or generative answer for one searched request; ``answer``: what ``ask`` returns.
"""
