"""Generation engines behind one interface (`Generator`); `make_generator` picks one from settings."""

from .base import Generator, Grounding, Usage
from .registry import make_generator

__all__ = ["Generator", "Grounding", "Usage", "make_generator"]
