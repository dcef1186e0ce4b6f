"""medrag: multimodal retrieval-augmented assistant for chest radiography."""

__version__ = "0.1.0"
