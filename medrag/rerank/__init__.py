"""Stage 7, rerank: reorder the retrieved candidates and choose the evidence sentences.

Built in: ``fusion`` (the position-aware cross-attention module, ``medrag.fuse``), ``retrieval`` (keep the
retrieval order), and the reader (the language model's yes / no on relevance) over either: ``reader`` and
``fusion+reader``. ``register_reranker(name, factory)`` adds one; ``Config.reranker`` chooses.
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
from medrag.rerank.reader import ReaderRerank

register_reranker("fusion", FusionRerank)
register_reranker("retrieval", RetrievalOrder)
register_reranker("reader", lambda context: ReaderRerank(context, RetrievalOrder(context)))
register_reranker("fusion+reader", lambda context: ReaderRerank(context, FusionRerank(context)))

__all__ = [
    "FusionRerank", "ReaderRerank", "RerankContext", "RerankRequest", "Reranked", "Reranker", "RerankerFactory",
    "RetrievalOrder", "make_reranker", "register_reranker", "rerankers", "unregister_reranker",
]
