"""The three built-in knowledge sources: PubMed articles, radiology reports and imaging cases."""

from __future__ import annotations

from knowledge_sources.cases import load_cases
from knowledge_sources.pubmed import load_pubmed
from knowledge_sources.reports import load_reports
from medrag.sources.names import ARTICLES, CASES, REPORTS
from medrag.sources.prepare import CasePreparer, prepare_article, prepare_report
from medrag.sources.registry import Field, KnowledgeSource, register_source

ARTICLE_SOURCE = register_source(KnowledgeSource(
    ARTICLES, "PubMed articles: title, abstract with section labels, MeSH", label="PubMed",
    display="PubMed articles",
    fields=(Field("title", "prose"), Field("journal", "keyword"), Field("mesh", "keywords"),
            Field("publication_types", "keywords")),
    load=load_pubmed, prepare=lambda context: prepare_article))

REPORT_SOURCE = register_source(KnowledgeSource(
    REPORTS, "Radiology reports with their sections", label="report", display="radiology reports",
    fields=(Field("indication", "prose"), Field("comparison", "prose"), Field("findings", "prose"),
            Field("impression", "prose"), Field("mesh", "keywords"), Field("image_ids", "keywords")),
    load=load_reports, prepare=lambda context: lambda record: prepare_report(record, context.scrubber),
    joint="text"))

CASE_SOURCE = register_source(KnowledgeSource(
    CASES, "Imaging cases: a de-identified image with its clinical note and finding", label="case",
    display="imaging cases",
    fields=(Field("note", "prose"), Field("finding", "keyword"), Field("view", "keyword"),
            Field("body_part", "keyword"), Field("sex", "keyword"), Field("age", "int"),
            Field("image_ref", "keyword", "where the de-identified image is kept"),
            Field("patient_key", "keyword",
                  "salted pseudonym of the patient: links a patient's images, never the identity"),
            Field("license", "keyword")),
    load=load_cases,
    prepare=lambda context: CasePreparer(context.deidentifier, context.scrubber, context.image_dir, context.tenant,
                                         context.limits),
    joint="image"))
