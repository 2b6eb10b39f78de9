"""The pipeline: documents -> index -> retrieval -> passages -> prompt -> model -> checked answer.

`Pipeline` (core.py) is made of one class per concern: keeping the index (upkeep.py), saved passage
states (states.py), what the model reads (passages.py), the decision's signals (signals.py) and the
decision (checking.py), and a second, wider reading of a refused reply (rereading.py); turn.py holds one question's records and the stream's events.
"""

from .core import Pipeline
from .turn import Done, Reread, Retrieved, Token, clean_question

__all__ = ["Done", "Pipeline", "Reread", "Retrieved", "Token", "clean_question"]
