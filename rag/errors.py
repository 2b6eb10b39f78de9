"""Typed errors. The CLI prints `str(error)` on one line and exits 2; the UI shows it in the chat."""


class RagError(Exception):
    """Base class for every error a user can cause or fix."""


class DocumentError(RagError):
    """A document could not be read (the file is skipped, the rest is indexed)."""


class IndexError_(RagError):
    """The saved index is missing, corrupt or built with other settings."""


class IndexMismatchError(IndexError_):
    """The saved index was built with other settings or another model."""


class IndexCorruptError(IndexError_):
    """A saved index file fails its checksum or cannot be parsed."""


class IndexBusyError(RagError):
    """Another process held the index folder's update lock for longer than we would wait."""


class ModelError(RagError):
    """A model file is missing, fails its sha256 check, or cannot be loaded."""


class QuestionError(RagError):
    """The question is empty, too long or otherwise unusable."""


class GenerationError(RagError):
    """The generation engine failed (server unreachable, context overflow it could not handle)."""


class StoreError(IndexError_):
    """The index's store (Milvus) cannot be reached, or refused or failed a request."""
