"""Knowledge sources as declarations: the registry every stage reads, and the three built-in sources.

``register_source(KnowledgeSource(...))`` adds one (see ARCHITECTURE.md); importing this package registers
PubMed articles, radiology reports and imaging cases.
"""

from medrag.sources.builtin import ARTICLE_SOURCE, CASE_SOURCE, REPORT_SOURCE
from medrag.sources.names import ARTICLES, CASES, REPORTS
from medrag.sources.registry import (
    COMMON_FIELDS,
    Field,
    KnowledgeSource,
    PrepareContext,
    Prepared,
    citation_label,
    collections,
    get_source,
    joint_collections,
    object_uuid,
    register_source,
    registered_sources,
    unregister_source,
)

__all__ = [
    "ARTICLES", "ARTICLE_SOURCE", "CASES", "CASE_SOURCE", "COMMON_FIELDS", "REPORTS", "REPORT_SOURCE", "Field",
    "KnowledgeSource", "PrepareContext", "Prepared", "citation_label", "collections", "get_source",
    "joint_collections", "object_uuid", "register_source", "registered_sources", "unregister_source",
]
