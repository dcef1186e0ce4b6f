"""Stage 7, rerank: reorder the retrieved candidates and choose the evidence sentences.

Built in: ``fusion`` (the position-aware cross-attention module, ``medrag.fuse``) and ``retrieval`` (keep the
retrieval order). ``register_reranker(name, factory)`` adds one; ``Config.reranker`` chooses.
"""

from medrag.rerank.base import (
    RerankContext,
    Reranked,
    Reranker,
    RerankerFactory,
    RerankRequest,
    RetrievalOrder,
    make_reranker,
    register_reranker,
    rerankers,
    unregister_reranker,
)
from medrag.rerank.fusion import FusionRerank

register_reranker("fusion", FusionRerank)
register_reranker("retrieval", RetrievalOrder)

__all__ = [
    "FusionRerank", "RerankContext", "RerankRequest", "Reranked", "Reranker", "RerankerFactory", "RetrievalOrder",
    "make_reranker", "register_reranker", "rerankers", "unregister_reranker",
]
