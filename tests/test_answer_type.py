"""The answer's type must fit the question (spaCy entities on the part of the answer that answers)."""

from __future__ import annotations

import pytest

from rag.answer.answer_type import expected, problem


@pytest.mark.parametrize("question, kind", [
    ("Who delivered the opening speech?", "who"),
    ("Whose ministry chaired it?", "who"),
    ("When was the plan signed?", "when"),
    ("In what year did the Assembly pass the law?", "when"),
    ("On which date was it signed?", "when"),
    ("Where was IMM6 held?", "where"),
    ("How many people were trained?", "how_many"),
    ("How much did the UK give?", "how_much"),
    ("What did the UK fund?", None),
    ("Why did migration rise?", None),
    ("When the Rhine emerges from Lake Constance which way does it flow?", None),
])
def test_expected_kind(question, kind):
    assert expected(question) == kind


@pytest.mark.parametrize("question, answer, fits", [
    ("Who delivered the opening speech?", "Deputy Prime Minister Bui Thanh Son delivered the opening speech.", True),
    ("Who delivered the opening speech?", "The opening speech was delivered on November 19.", False),
    ("Who chaired the conference?", "The Ministry of Public Security chaired the conference.", True),
    ("When was the plan signed?", "The plan was signed on March 31.", True),
    ("When was the plan signed?", "The plan was signed in London.", False),
    ("In what year was the law passed?", "The law was passed in 2024.", True),
    ("Where was IMM6 held?", "IMM6 was held in Hanoi.", True),
    ("Where was IMM6 held?", "IMM6 was held on November 19.", False),
    ("How many people were trained?", "The project trained 1,936 people.", True),
    ("How many people were trained?", "The project trained people with 1 million pounds.", False),
    ("How much did the UK give?", "The UK gave 1 million pounds.", True),
    ("How much did the UK give?", "The UK gave a grant.", False),
    ("What did the UK fund?", "The UK funded a grant.", True),  # not a checked kind
    ("Who opened IMM6?", "IMM6 opened on November 19.", False),  # the question's own name does not count
    ("Where was the Rhine regulated with a lower canal?", "It was regulated with a lower canal at Fußach, against flooding.", True),
])
def test_type_fits_or_says_why(question, answer, fits):
    why = problem(question, answer)
    assert (why == "") == fits, why
    if not fits:
        assert why.startswith("the question asks")
