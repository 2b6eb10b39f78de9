"""Passage selection: windows of whole sentences around the best one, grown up to a size, cut when one
sentence is longer; idf is asked about words, never stems (a stem stemmed again is another word)."""

from rag.answer.prompting import select_passages
from rag.records import Chunk, Hit

TEXT = ("Rain fell in the morning. The council met at noon. The council voted to fund the bridge. "
        "The vote was close. Lunch followed.")


def hit(text: str, start: int = 100) -> Hit:
    return Hit(Chunk("d.txt#0", "d.txt", start, start + len(text), text), 1.0, 1)


def flat_idf(word: str) -> float:
    return 1.0


def test_the_best_sentence_grows_by_neighbours_up_to_the_limit_and_stays_an_exact_span():
    h = hit(TEXT)
    best = "The council voted to fund the bridge."
    (small,) = select_passages([h], "What did the council vote to fund?", flat_idf, len(best))
    assert small.text == best
    (grown,) = select_passages([h], "What did the council vote to fund?", flat_idf, 90)
    assert best in grown.text and len(grown.text) <= 90 and len(grown.text) > len(best)
    for p in (small, grown):  # document offsets reproduce the text
        assert TEXT[p.start - 100 : p.end - 100] == p.text


def test_one_sentence_longer_than_the_limit_is_cut_at_a_word_boundary():
    long = "The council " + "very " * 60 + "carefully voted."
    (p,) = select_passages([hit(long)], "How did the council vote?", flat_idf, 80)
    assert len(p.text) <= 80 and long.startswith(p.text) and long[len(p.text)] == " "


def test_idf_is_asked_about_the_questions_words_not_their_stems():
    asked: list[str] = []

    def idf(word: str) -> float:
        asked.append(word)
        return 1.0

    select_passages([hit(TEXT)], "Which houses were processed?", idf, 200, context="passes")
    assert set(asked) == {"houses", "processed", "passes"}  # not "hous", "process", "pass"
