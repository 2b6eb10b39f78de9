"""Local retrieval-augmented question answering with checked citations.

>>> from rag import Pipeline, Settings  # doctest: +SKIP
>>> Pipeline.from_settings(Settings()).ask("What did the UK fund?").answer  # doctest: +SKIP
"""

from .pipeline import Pipeline
from .settings import Settings

__all__ = ["Pipeline", "Settings"]
