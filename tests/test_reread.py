"""The second, wider reading (setting `reread_tokens`): a refused first reply is read again with more passages."""

from __future__ import annotations

from dataclasses import replace

from rag.app.present import answer_markdown
from rag.generation.echo import EchoGenerator
from rag.pipeline import Done, Pipeline, Reread, Retrieved, Token
from rag.store.embedding import make_embedder

QUESTION = "What did the UK fund?"


class NarrowWrong(EchoGenerator):
    """Replies with a number no passage states while it is given one passage; extractive (echo) with more."""

    def __init__(self):
        super().__init__()
        self.readings: list[int] = []

    def _reply(self, grounding) -> str:
        self.readings.append(len(grounding.passages))
        if len(grounding.passages) < 2:
            return "The UK funded 987654 police officers [1]."
        return super()._reply(grounding)


def _pipeline(settings, **changes):
    s = replace(settings, **({"min_passages": 1, "max_passages": 1, "model_check": False} | changes))
    p = Pipeline(s, make_embedder("hashing", s.cache_dir), generator=NarrowWrong())
    p.update_index()
    return p


def test_a_refused_first_reply_is_read_again_with_more_passages(fake_settings):
    p = _pipeline(fake_settings, reread_tokens=4000, reread_passages=4)
    events = list(p.ask_stream(QUESTION))
    kinds = [type(e) for e in events]
    assert kinds[0] is Retrieved and kinds[-1] is Done and kinds.count(Reread) == 1
    at = kinds.index(Reread)
    assert Token in kinds[1:at] and Token in kinds[at + 1 : -1]  # both readings stream their replies
    first_passages, wider = events[0].passages, events[at].passages
    assert len(first_passages) == 1 and len(wider) > 1
    assert [x.hit.chunk.id for x in wider[:1]] == [x.hit.chunk.id for x in first_passages]  # rank order kept
    assert "987654" in events[at].reason
    answer = events[-1].answer
    assert not answer.abstained and answer.readings == 2 and "987654" in answer.first_reason
    assert answer.passages == wider and p.generator.readings == [1, len(wider)]
    assert answer.timings.reread_s is not None and answer.timings.ttft_s < answer.timings.reread_s
    assert answer.timings.tokens_per_s is None  # two generations are not one speed
    assert answer.to_json()["readings"] == 2


def test_off_by_default_and_when_nothing_more_would_be_read(fake_settings):
    for changes in ({}, {"reread_tokens": 4000, "reread_passages": 1}):
        p = _pipeline(fake_settings, **changes)
        events = list(p.ask_stream(QUESTION))
        assert not any(isinstance(e, Reread) for e in events)
        answer = events[-1].answer
        assert answer.abstained and answer.readings == 1 and "987654" in answer.abstain_reason
        assert p.generator.readings == [1]


def test_a_kept_first_reply_is_not_read_again(fake_settings):
    p = _pipeline(fake_settings, reread_tokens=4000, reread_passages=4, max_passages=2)
    answer = p.ask(QUESTION)
    assert not answer.abstained and answer.readings == 1 and p.generator.readings == [2]


def test_both_readings_refused_says_so(fake_settings):
    class AlwaysWrong(NarrowWrong):
        def _reply(self, grounding) -> str:
            self.readings.append(len(grounding.passages))
            return "The UK funded 987654 police officers [1]."

    s = replace(fake_settings, min_passages=1, max_passages=1, model_check=False, reread_tokens=4000, reread_passages=3)
    p = Pipeline(s, make_embedder("hashing", s.cache_dir), generator=AlwaysWrong())
    p.update_index()
    answer = p.ask(QUESTION)
    assert answer.abstained and answer.readings == 2 and len(p.generator.readings) == 2
    shown = answer_markdown(answer, 1)
    assert "read twice" in shown and f"with {len(answer.passages)} passages" in shown


def test_the_page_shows_the_wider_passages_and_then_the_second_answer(fake_settings):
    import threading

    import ui

    p = _pipeline(fake_settings, reread_tokens=4000, reread_passages=4)
    # (message shown, sources panel) at each update: the chat list is updated in place, so read it as it comes
    states = [(chat[-1]["content"], panel) for chat, panel, *_ in ui._respond(p, QUESTION, [], [], 0, 480, 160,
                                                                             threading.Event())]
    at = next(i for i, (_, panel) in enumerate(states) if "the first reply was not kept" in panel)
    assert any("987654" in shown for shown, _ in states[:at])  # the first reply streamed
    assert states[at][0] == "…"  # then cleared for the second
    final = states[-1][0]
    assert "987654" not in final and "Not answered" not in final and "1 million" in final


def test_the_replay_of_two_recorded_readings_decides_as_the_pipeline():
    """eval/reread_replay.py: the first reading's decision, and where it abstains the second's."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("reread_replay", Path(__file__).parent.parent / "eval" / "reread_replay.py")
    replay_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replay_module)

    class Fixed:  # a calibrator whose confidence is the row's own "p" signal
        def probability(self, signals):
            return signals["p"]

    def row(answerable, veto_abstained, veto_correct=False, label=None, p=0.0):
        return {"answerable": answerable, "veto_abstained": veto_abstained, "veto_correct": veto_correct,
                "abstained": veto_abstained, "correct": veto_correct, "label": label, "signals": {"p": p}}

    first = {"kept": row(True, False, True), "rescued": row(True, True, label=True, p=0.9),
             "reread": row(True, True, label=False, p=0.1), "unanswerable": row(False, True, label=False, p=0.2)}
    second = {"kept": row(True, True), "rescued": row(True, True), "reread": row(True, False, True),
              "unanswerable": row(False, True, label=False, p=0.95)}
    both = replay_module.replay(first, second, Fixed(), 0.5, "either", first_only=False)
    # kept by the rules, rescued by its confidence, right on the second reading; the unanswerable one is
    # answered (wrongly) by the second reading's rescue
    assert (both["right"], both["shown"], both["read_twice"], both["abstention_recall"]) == (3, 4, 2, 0.0)
    alone = replay_module.replay(first, second, Fixed(), 0.5, "either", first_only=True)
    assert (alone["right"], alone["shown"], alone["abstention_recall"]) == (3, 2, 1.0)
    rules = replay_module.replay(first, second, Fixed(), 0.5, "vetoes", first_only=False)
    assert (rules["right"], rules["shown"], rules["read_twice"]) == (3, 2, 3)
