"""Stage 8, generate: grounded answers with numbered citations.

- ``evidence``: the numbered evidence sentences (fusion's selection) and the rule that text addressed to
  an AI model is data, never support;
- ``prompt``: fixed instructions, evidence quoted as data;
- the reader (the language model) lives below the stages, in ``medrag.lm``, so the rerank stage can use it too;
- ``grounding``: which written sentences a cited evidence sentence supports (the reader's yes / no, or cosine);
- ``decision``: yes / no / maybe from the reader's scores, calibrated, abstaining below a measured confidence;
- ``writer``: extractive or generative answer for one searched request; ``answer``: what ``ask`` returns.
"""
