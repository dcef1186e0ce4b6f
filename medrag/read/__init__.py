"""The model's read of the query radiograph (a calibrated finding probability with its measured AUC)."""

from medrag.read.reader import FindingReader

__all__ = ["FindingReader"]
