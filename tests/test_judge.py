"""The answer check end to end: a scripted fake engine hands the pipeline wrong replies of the kinds a
real 1.5B model gave on the seed documents, and each must be rejected (or re-pointed) for its reason,
while right replies stand with the exact sentence cited."""

from __future__ import annotations

from dataclasses import replace

import pytest

from conftest import MEKONG_DOC, SEEDS, UK_DOC
from rag.answer.answering import Policy, finish, first_supported_claim, with_model_check
from rag.answer.citations import check_answer, claim_text
from rag.store.embedding import make_embedder
from rag.generation.echo import EchoGenerator
from rag.answer.judge import Thresholds, judge
from rag.pipeline import Pipeline
from rag.records import Chunk, Hit, Passage, Timings

UK = "What did the UK fund?"
REPLIES = {
    # a Vietnamese Deputy Prime Minister passed off as the UK's Prime Minister
    "Who is the Prime Minister of the UK?": "The Prime Minister of the UK is Bui Thanh Son, as stated in passage [2].",
    # "$" and Thailand are nowhere in the cited passage
    "How much did the UK give to Thailand?": "The UK gave $1 million to Thailand through the Modern slavery Prevention and Control Fund [1].",
    # the year is not in the passage (a word of the question, so it used to pass)
    "What did the UK fund in 2023?": "The UK funded a grant of 1 million pounds from the Modern slavery Prevention and Control Fund in 2023 [1].",
    # 1 million counts pounds in the passage, not people
    "How many people did the project train?": "The project trained 1 million people [1].",
    # nothing but the question's own words
    "What did the UK fund through the Modern slavery Prevention Fund?": "The UK funded it [3].",
    # 7 million counts people reached, not pounds
    "How much was the UK grant?": "The UK gave a grant with 7 million pounds [1].",
    # garbled
    "Who opened IMM6?": "The Deputy Prime Minister appears in,, and [1].",
    # another country's minister: the answer drops "of Thailand"
    "What did the Deputy Prime Minister of Thailand say at the conference?":
        "Deputy Prime Minister Bui Thanh Son delivered the opening speech at the conference [2].",
    # the year of another event (Vietnam chairs COMMIT in 2025)
    "When did Vietnam join the COMMIT Process?": "Vietnam joined the COMMIT Process in 2025 [1].",
    # a budget the documents never speak of
    "What is the annual budget of the UK's Modern Slavery Prevention Fund?":
        "The annual budget of the UK's Modern Slavery Prevention Fund is 1 million pounds [1].",
    # one right sentence, one invented
    "Who signed the Joint Action Plan for the UK?": "Yvette Cooper signed the Joint Action Plan [1]. She is the UK's Prime Minister [1].",
    # right claim, wrong marker: must be re-pointed to the Mekong document
    "Where was IMM6 held?": "The 6th Greater Mekong Subregion Ministerial Conference on Human Trafficking was held in Hanoi [9].",
    UK: "The UK funded a grant of 1 million pounds from the Modern slavery Prevention and Control Fund [1].",
    "How many people did the UK-funded project train?": "The project trained 1,936 people [1].",
}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from rag.settings import Settings

    tmp = tmp_path_factory.mktemp("judge")
    settings = Settings(docs_dir=SEEDS, index_dir=tmp / "index", cache_dir=tmp / "cache", embedder="hashing", engine="echo",
                        max_passages=6, evidence_tokens_windows=2000)
    p = Pipeline(settings, make_embedder("hashing", tmp / "cache"), generator=EchoGenerator(script=REPLIES))
    p.update_index()
    return p


@pytest.mark.parametrize("question, reasons", [
    ("Who is the Prime Minister of the UK?", ["does not answer the question asked"]),
    ("How much did the UK give to Thailand?", ["counts dollar, the passage's counts pound", "Thailand"]),
    ("What did the UK fund in 2023?", ["the number 2023"]),
    # the closest sentence may be the one about training (no "1 million" there) or the grant (pounds)
    ("How many people did the project train?", ["counts person", "the number 1 million is not"]),
    ("What did the UK fund through the Modern slavery Prevention Fund?", ["only restates the question"]),
    ("How much was the UK grant?", ["counts pound, the passage's counts person", "the number 7 million is not"]),
    ("Who opened IMM6?", ["garbled"]),
    ("What did the Deputy Prime Minister of Thailand say at the conference?", ["not of Thailand's"]),
    ("When did Vietnam join the COMMIT Process?", ['does not say when it happened ("join"']),
    ("What is the annual budget of the UK's Modern Slavery Prevention Fund?", ["no passage speaks of annual, budget"]),
])
def test_wrong_replies_abstain_with_their_reason(pipeline, question, reasons):
    a = pipeline.ask(question)
    assert a.abstained, a.answer
    assert a.citations == ()
    assert any(r in a.abstain_reason for r in reasons), a.abstain_reason
    assert [u.claim for u in a.unsupported] and a.unsupported[0].reason in a.abstain_reason
    assert a.to_json()["unsupported"][0]["reason"] == a.unsupported[0].reason


def test_unsupported_sentence_is_removed_and_listed(pipeline):
    a = pipeline.ask("Who signed the Joint Action Plan for the UK?")
    assert not a.abstained
    (c,) = a.citations
    assert a.answer == f"Yvette Cooper signed the Joint Action Plan [{c.marker}]."
    assert [u.claim for u in a.unsupported] == ["She is the UK's Prime Minister."]
    assert "Prime Minister" not in a.answer
    assert "Yvette Cooper signed a Joint Action Plan" in c.text


def test_wrong_marker_is_repointed_to_the_passage_that_states_it(pipeline):
    a = pipeline.ask("Where was IMM6 held?")
    assert not a.abstained and 9 in a.dropped_markers
    (c,) = a.citations
    assert c.source == MEKONG_DOC and "in Hanoi" in c.text
    assert f"[{c.marker}]" in a.answer
    assert pipeline.document_text(c.source)[c.start:c.end] == c.text


@pytest.mark.parametrize("question, needle, short", [
    (UK, "1 million pounds", "1 million pounds"),
    ("How many people did the UK-funded project train?", "trained 1,936 people", "1,936"),
])
def test_right_replies_stand_and_cite_the_sentence_that_states_them(pipeline, question, needle, short):
    a = pipeline.ask(question)
    assert not a.abstained, a.abstain_reason
    (c,) = a.citations
    assert c.source == UK_DOC and needle in c.text
    # the citation is one sentence (or two adjacent ones), not the whole passage
    assert c.text.count(". ") <= 1 and len(c.text) < 400
    assert pipeline.document_text(UK_DOC)[c.start:c.end] == c.text
    assert short in a.short_answer


def _one_passage(text: str) -> list[Passage]:
    return [Passage(1, Hit(Chunk("d#0", "d.txt", 0, len(text), text), 1.0, 1), 0, len(text), text)]


def test_numbers_compare_by_value_and_what_they_count():
    p = _one_passage("Denver was kept out of the end zone for three plays. The ad cost $5 million. It drew 111.9 million viewers.")
    q = "What happened?"
    assert judge("Denver was kept out for 3 plays.", "How long was Denver kept out of the end zone?", p).supported
    assert judge("The ad cost $5,000,000.", "How much did the ad cost?", p).supported
    assert not judge("The ad cost $6,000,000.", "How much did the ad cost?", p).supported
    assert not judge("The ad cost 5 million pounds.", "How much did the ad cost?", p).supported
    assert not judge("It drew 111.9 million dollars.", q, p).supported


def test_dates_compare_whole():
    p = _one_passage("The plan was signed on March 31, 2024 in London.")
    assert judge("It was signed on March 31, 2024.", "When was the plan signed?", p).supported
    assert not judge("It was signed on May 31, 2024.", "When was the plan signed?", p).supported
    assert not judge("It was signed on March 31, 2023.", "When was the plan signed?", p).supported


def test_question_words_found_elsewhere_in_the_passage_do_not_count():
    # Thailand is in the passage, but two sentences away from the amount
    p = _one_passage("Thailand attended the meeting. The weather was fine. Later, the UK gave 1 million pounds to Laos.")
    assert not judge("The UK gave 1 million pounds to Thailand.", "How much did the UK give to Thailand?", p).supported
    assert judge("The UK gave 1 million pounds to Laos.", "How much did the UK give to Laos?", p).supported


def test_stricter_coverage_abstains_more():
    text = "Deputy Prime Minister Bui Thanh Son delivered the opening speech."
    p = _one_passage(text)
    claim, question = "Bui Thanh Son delivered the speech.", "Who delivered the opening speech at the Hanoi conference?"
    assert judge(claim, question, p, thresholds=Thresholds(0.5, 0.3)).supported
    assert not judge(claim, question, p, thresholds=Thresholds(0.5, 0.9)).supported


def test_model_check_threshold_decides_only_when_set():
    p = _one_passage("The project trained 1,936 people.")
    q, raw = "How many people did the project train?", "The project trained 1,936 people [1]."
    assert not finish(q, raw, p, Timings(), q, None, model_yes=0.2).abstained  # 0 = the check does not decide
    a = finish(q, raw, p, Timings(), q, None, policy=Policy(min_model_yes=0.5), model_yes=0.2)
    assert a.abstained and "P(yes) 0.20" in a.abstain_reason and a.model_check == 0.2
    assert not finish(q, raw, p, Timings(), q, None, policy=Policy(min_model_yes=0.5), model_yes=0.8).abstained


def test_model_check_applied_after_the_rules_decides_as_finish_does():
    p = _one_passage("The project trained 1,936 people.")
    q, policy = "How many people did the project train?", Policy(min_model_yes=0.5)
    for raw in ("The project trained 1,936 people [1].", "The project trained 7 people [1]."):
        ruled = finish(q, raw, p, Timings(), q, None, policy=policy)
        for yes in (None, 0.2, 0.8):
            once = finish(q, raw, p, Timings(), q, None, policy=policy, model_yes=yes)
            after = with_model_check(ruled, yes, policy)
            assert (after.abstained, after.answer, after.short_answer, after.abstain_reason, after.model_check, after.citations) == \
                (once.abstained, once.answer, once.short_answer, once.abstain_reason, once.model_check, once.citations)


def test_model_check_asks_about_the_cited_passage_alone(tmp_path):
    from rag.settings import Settings

    settings = Settings(docs_dir=SEEDS, index_dir=tmp_path / "ix", cache_dir=tmp_path / "c", embedder="hashing",
                        engine="echo", model_check=True, min_model_yes=0.5)
    seen = []

    class Recording(EchoGenerator):
        def yes_probability(self, messages, grounding=None):
            seen.append(messages)
            return 0.1

    p = Pipeline(settings, make_embedder("hashing", tmp_path / "c"), generator=Recording())
    p.update_index()
    kept = Pipeline(replace(settings, model_check=False), p.embedder, p.index, Recording()).ask(UK)
    assert not kept.abstained and not seen  # off: never asked
    a = p.ask(UK)
    assert a.abstained and a.model_check == 0.1 and "P(yes) 0.10" in a.abstain_reason
    (messages,) = seen
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    cited = kept.citations[0]
    passage = next(q for q in kept.passages if q.hit.chunk.source == cited.source and q.start <= cited.start < q.end)
    assert passage.text in user
    assert claim_text(first_supported_claim(kept.answer)) in user  # the sentence the rules kept, without its marker


def test_model_check_asks_about_the_passage_the_first_sentence_cites(tmp_path):
    """A first sentence citing [2] before a second citing [1]: the check reads passage 2, not the lowest number."""
    from rag.records import Answer
    from rag.settings import Settings

    seen = []

    class Recording(EchoGenerator):
        def yes_probability(self, messages, grounding=None):
            seen.append(messages[1]["content"])
            return 0.9

    settings = Settings(docs_dir=SEEDS, index_dir=tmp_path / "ix", cache_dir=tmp_path / "c", embedder="hashing",
                        engine="echo", model_check=True)
    p = Pipeline(settings, make_embedder("hashing", tmp_path / "c"), generator=Recording())
    one, two = _passage_of("a.txt", "Laos sent a delegation."), _passage_of("b.txt", "Thailand hosted the talks.")
    passages = [one[0], replace(two[0], number=2)]
    from rag.records import Citation

    cites = tuple(Citation(x.number, x.hit.chunk.source, 0, len(x.text), x.text) for x in passages)  # ordered by marker
    ruled = Answer("Who hosted the talks?", "Thailand hosted the talks [2]. Laos sent a delegation [1].", False, cites,
                   tuple(passages), Timings())
    assert p._model_check(ruled.question, ruled, passages, None) == 0.9
    (user,) = seen
    assert "Thailand hosted the talks." in user and "Laos" not in user


def test_a_place_qualifier_is_checked_against_the_passage_not_the_sentence():
    text = "The conference was held in Hanoi on November 19. Delegations from Vietnam and Laos attended."
    p = _one_passage(text)
    q = "Where was the conference held?"
    assert judge("The conference was held in Hanoi, Vietnam.", q, p).supported
    assert not judge("The conference was held in Hanoi, Thailand.", q, p).supported
    assert not judge("The conference was held in Hue, Vietnam.", q, p).supported


def test_a_place_qualifier_may_come_from_the_chunk_outside_the_passage_window():
    chunk_text = "Vietnam hosted the meeting. The conference was held in Hanoi on November 19."
    start = chunk_text.index("The conference")
    chunk = Chunk(id="d#0", source="d.txt", start=0, end=len(chunk_text), text=chunk_text)
    p = [Passage(1, Hit(chunk, 1.0, 1), start, len(chunk_text), chunk_text[start:])]
    q = "Where was the conference held?"
    assert judge("The conference was held in Hanoi, Vietnam.", q, p).supported
    assert not judge("The conference was held in Hanoi, Laos.", q, p).supported


def test_asked_near_decides_where_the_question_names_must_be():
    """A name the question gave ("Laos") far from the cited sentence: refused with "window", accepted with "chunk" or "off"."""
    from rag.answer.judge import Thresholds

    text = ("Laos sent a delegation. The weather was mild. Lunch was served at noon. The rooms were large. "
            "The minister signed the plan on March 31.")
    start = text.index("The minister")
    chunk = Chunk(id="d#0", source="d.txt", start=0, end=len(text), text=text)
    p = [Passage(1, Hit(chunk, 1.0, 1), start, len(text), text[start:])]
    q = "When did the minister of Laos sign the plan?"
    claim = "The minister of Laos signed the plan on March 31."
    assert not judge(claim, q, p, thresholds=Thresholds(asked_near="window")).supported
    assert judge(claim, q, p, thresholds=Thresholds(asked_near="chunk")).supported
    assert judge(claim, q, p, thresholds=Thresholds(asked_near="off")).supported


def test_a_number_read_as_part_of_a_name_in_the_passage_still_matches():
    # the tagger reads "One" of "Xbox One" as a number in the answer, as part of a name in the passage
    p = _one_passage("CBS provided digital streams of the game via CBSSports.com, and the CBS Sports apps on tablets, "
                     "Windows 10, Xbox One and other digital media players.")
    q = "On what game console was the CBS Sports app available?"
    assert judge("It was available on Xbox One.", q, p).supported
    assert not judge("It was available on Xbox 360.", q, p).supported


def test_a_company_suffix_does_not_end_the_sentence():
    p = _one_passage("The trophy was designed by Tiffany & Co. in New York. The game was played in California.")
    v = judge("Tiffany & Co. designed the trophy.", "Who designed the trophy?", p)
    assert v.supported, v.reason
    assert v.evidence.text.startswith("The trophy was designed by Tiffany & Co. in New York.")


def _passage_of(source: str, text: str, title: str = "") -> list[Passage]:
    chunk = Chunk(id=f"{source}#0", source=source, start=0, end=len(text), text=text, title=title)
    return [Passage(1, Hit(chunk, 1.0, 1), 0, len(text), text)]


def test_the_document_name_frames_the_names_and_numbers_the_question_gave():
    text = "Kevin Harlan announced the game play-by-play. Boomer Esiason was the analyst."
    q = "Who announced the game play-by-play for Super Bowl 50?"
    claim = "Kevin Harlan announced the game play-by-play for Super Bowl 50."
    assert judge(claim, q, _passage_of("Super_Bowl_50_031.txt", text)).supported
    # the same passage in a file whose name says nothing: the 50 is nowhere
    assert "the number 50" in judge(claim, q, _passage_of("notes.txt", text)).reason
    # another number than the name's is still refused
    q49, claim49 = q.replace("50", "49"), claim.replace("50", "49")
    assert not judge(claim49, q49, _passage_of("Super_Bowl_50_031.txt", text)).supported
    # a whole title counts; a first line cut short is no title
    assert judge(claim, q, _passage_of("notes.txt", text, title="Super Bowl 50 broadcast")).supported
    assert not judge(claim, q, _passage_of("notes.txt", text, title="Super Bowl 50 was an American football game…")).supported


def test_times_repeats_a_count_and_one_of_counts_nothing():
    p = _one_passage("Manning finished the year with 17 interceptions. Miami's Sun Life Stadium and Levi's Stadium were the three finalists.")
    assert judge("Manning was intercepted 17 times.", "How many times was Manning intercepted?", p).supported
    assert not judge("Manning was intercepted 18 times.", "How many times was Manning intercepted?", p).supported
    assert not judge("Manning threw 17 passes.", "How many passes did Manning throw?", p).supported
    v = judge("Sun Life Stadium was one of the three finalists.", "Which Florida stadium was a finalist?", p)
    assert v.supported, v.reason


def test_quote_first_keeps_an_answer_only_when_its_quotation_is_a_passages_words():
    text = "The UK gave a grant of 1 million pounds. The project trained 1,936 people."
    p = _one_passage(text)
    q = "How many people did the project train?"
    policy = Policy(quote_first=True)
    good = finish(q, '"The project trained 1,936 people." The project trained 1,936 people [1].', p, Timings(), q, None, policy=policy)
    assert not good.abstained and good.quoted == "The project trained 1,936 people."
    assert good.answer.startswith("The project trained 1,936 people")
    made_up = finish(q, '"The project trained 2,000 people." The project trained 1,936 people [1].', p, Timings(), q, None, policy=policy)
    assert made_up.abstained and "not in the passages word for word" in made_up.abstain_reason
    unquoted = finish(q, "The project trained 1,936 people [1].", p, Timings(), q, None, policy=policy)
    assert unquoted.abstained and "quoted no sentence" in unquoted.abstain_reason
    # without the setting a leading quotation is part of the answer, as the model wrote it
    plain = finish(q, '"1,936 people" were trained [1].', p, Timings(), q, None)
    assert plain.quoted is None and "1,936" in plain.answer


def test_answer_hint_names_the_kind_of_answer_in_the_instruction():
    from rag.answer.answer_type import hint
    from rag.answer.prompting import build_blocks, whole_chunks

    hits = [Hit(Chunk("a#0", "a", 0, 5, "Rain."), 1.0, 1)]
    plain = build_blocks("When did it rain?", whole_chunks(hits))
    hinted = build_blocks("When did it rain?", whole_chunks(hits), hint=hint("When did it rain?"))
    assert "date or a time" in hinted.tail and "date" not in plain.tail
    assert hinted.head == plain.head and hinted.blocks == plain.blocks  # the saved passage states still fit


def test_an_answer_about_another_ones_minister_does_not_stand():
    p = _one_passage("Deputy Prime Minister Bui Thanh Son delivered the opening speech at the conference. "
                     "Delegations from Thailand and Laos attended.")
    v = judge("Deputy Prime Minister Bui Thanh Son delivered the opening speech.",
              "What did the Deputy Prime Minister of Thailand say at the conference?", p)
    assert not v.supported and "Thailand" in v.reason
    assert not judge("Deputy Prime Minister Bui Thanh Son delivered the opening speech.",
                     "What did Thailand's Deputy Prime Minister say at the conference?", p).supported
    # the same answer to the question it does answer stands
    assert judge("Deputy Prime Minister Bui Thanh Son delivered the opening speech.",
                 "What did the Deputy Prime Minister say at the conference?", p).supported


def test_a_date_answers_when_only_where_the_questions_event_is_stated():
    p = _one_passage("Vietnam was Chair of the COMMIT Process in 2025. Vietnam joined the COMMIT Process in 2004.")
    assert not judge("Vietnam joined the COMMIT Process in 2025.", "When did Vietnam join the COMMIT Process?",
                     _one_passage("Vietnam was Chair of the COMMIT Process in 2025.")).supported
    v = judge("Vietnam joined the COMMIT Process in 2004.", "When did Vietnam join the COMMIT Process?", p)
    assert v.supported and "2004" in v.evidence.text
    off = Thresholds(when_event=False)
    assert judge("Vietnam joined the COMMIT Process in 2025.", "When did Vietnam join the COMMIT Process?",
                 _one_passage("Vietnam was Chair of the COMMIT Process in 2025."), thresholds=off).supported


def test_an_answer_about_what_no_passage_discusses_is_removed():
    text = "Since 2018, through the Modern slavery Prevention Fund, the UK has sponsored a project. The grant was 1 million pounds."
    p = _one_passage(text)
    q = "What is the annual budget of the UK's Modern Slavery Prevention Fund?"
    reply = "The annual budget of the UK's Modern Slavery Prevention Fund is 1 million pounds [1]."
    checked = check_answer(reply, p, q)
    assert not checked.citations and "annual, budget" in checked.unsupported[0].reason
    # one such word is allowed (it may paraphrase the passage), and -1 turns the rule off
    one = check_answer(reply.replace("annual budget", "budget"), p, q.replace("annual budget", "budget"))
    assert not any("no passage speaks of" in u.reason for u in one.unsupported)
    off = check_answer(reply, p, q, thresholds=Thresholds(max_restated_absent=-1))
    assert not any("no passage speaks of" in u.reason for u in off.unsupported)


def test_a_compound_written_apart_in_the_question_matches_one_word_in_the_passage():
    claim = "Beyoncé and Bruno Mars came out with Coldplay during the half-time show."
    q = "What two artists came out with Coldplay during the half-time show?"
    closed = judge(claim, q, _one_passage("Beyoncé and Bruno Mars joined Coldplay for the halftime show."))
    hyphen = judge(claim, q, _one_passage("Beyoncé and Bruno Mars joined Coldplay for the half-time show."))
    apart = judge(claim, q, _one_passage("Beyoncé and Bruno Mars joined Coldplay for the show."))
    assert closed.supported, closed.reason
    assert closed.evidence.coverage == hyphen.evidence.coverage > apart.evidence.coverage
    from rag.answer.judge import restated_absent

    assert restated_absent(claim, q, _one_passage("Beyoncé and Bruno Mars joined Coldplay for the halftime show.")) == []


def test_a_quotation_of_fewer_than_three_words_is_too_short_to_check():
    from rag.answer.answering import quote_problem

    p = _one_passage("The project trained 1,936 people.")
    assert "too short" in quote_problem("trained", p)
    assert quote_problem("The project trained", p) == ""


def test_a_span_of_years_the_question_gives_is_met_by_any_year_of_it():
    text = "In 1942 Bukovsky was born a Soviet citizen in Belebey."
    q = "Which citizenship did Bukovsky have from 1942 to 1976?"
    # the answer restates the question's span; the passage states its first year
    assert judge("Bukovsky had Soviet citizenship from 1942 to 1976.", q, _passage_of("a.txt", text)).supported
    # a year inside the span meets it too; one outside it does not
    inside = "In 1950 Bukovsky was a Soviet citizen in Belebey."
    assert judge("Bukovsky had Soviet citizenship from 1942 to 1976.", q, _passage_of("a.txt", inside)).supported
    outside = "In 1990 Bukovsky was a Soviet citizen in Belebey."
    assert "the number" in judge("Bukovsky had Soviet citizenship from 1942 to 1976.", q, _passage_of("a.txt", outside)).reason
    # a year the question names alone, not as a span, must still be stated
    single = "Which citizenship did Bukovsky have in 1976?"
    assert "the number 1976" in judge("Bukovsky had Soviet citizenship in 1976.", single, _passage_of("a.txt", text)).reason
    # a number the answer adds outside the question's span is still its own claim
    assert not judge("Bukovsky had Soviet citizenship from 1942 to 1980.", q, _passage_of("a.txt", text)).supported


def test_an_abbreviated_month_in_the_question_matches_the_month_the_passage_names():
    text = "Marko Lelov was appointed head coach of Flora Tallinn in October 2012 and left in July 2013."
    p = _passage_of("a.txt", text)
    q = "The Estonian team of Flora Tallinn had which coach from Oct 2012 to Jul 2013?"
    reply = "Marko Lelov was the coach of Flora Tallinn from Oct 2012 to Jul 2013 [1]."
    checked = check_answer(reply, p, q)
    assert checked.citations and not checked.unsupported
    # a month the passage does not name is still absent
    other = "Marko Lelov was appointed head coach of Flora Tallinn in 2012 and left in 2013."
    absent = check_answer(reply, _passage_of("a.txt", other), q, thresholds=Thresholds(max_restated_absent=0))
    assert any("oct" in u.reason for u in absent.unsupported)


def test_a_snippet_need_not_repeat_the_subject_its_document_is_named_for():
    text = "He was then married to actress Tuesday Weld from 1985 to 1998."
    q = "Violinist Pinchas Zukerman was married to what wife from 1985 to 1998?"
    claim = "Pinchas Zukerman was married to Tuesday Weld."
    assert judge(claim, q, _passage_of("148_Pinchas_Zukerman_09.txt", text)).supported
    assert "does not answer the question asked" in judge(claim, q, _passage_of("notes_09.txt", text)).reason
