"""The collection names of the built-in sources (their own module, so preparation and declarations share them)."""

ARTICLES = "PubmedArticle"
REPORTS = "RadiologyReport"
CASES = "ImagingCase"
