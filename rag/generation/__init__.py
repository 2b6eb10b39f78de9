"""Generation engines behind one interface (`Generator`); `make_generator` picks one from settings."""

from .base import Generator, Usage, make_generator

__all__ = ["Generator", "Usage", "make_generator"]
