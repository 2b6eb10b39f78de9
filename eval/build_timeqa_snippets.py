"""Build the snippet-style development set `eval/timeqa-snippets/` from TimeQA's human-annotated test split.

Source: TimeQA (Chen, Wang and Wang, "A Dataset for Answering Time-Sensitive Questions", NeurIPS 2021
Datasets and Benchmarks), github.com/wenhuchen/Time-Sensitive-QA, `dataset/human_annotated_test.json`,
BSD 3-Clause licence. Each TimeQA document is a Wikipedia article about one subject (a person, a club,
a company) whose questions ask the same relation in different periods ("What team did Gary Mills coach
from 2010 to 2013?"), so the article's other paragraphs are natural distractors: the same subject in
another year.

What this script makes of it (deterministic for a given seed):
- snippets of 12-60 words (whole sentences; a longer sentence alone, up to 90 words), cut from the
  articles' paragraphs, with TimeQA's tokenised spacing ("Engel ( born 1947 )") undone; one file each;
- answerable questions: the snippet holding TimeQA's answer span states the answer and at least one of
  the question's years, and another snippet of the same article names another year (the distractor);
- unanswerable questions: a question whose answer snippet is left out of the corpus, and whose answer
  occurs in no snippet that is kept, while snippets of the same subject in other years stay.

    python eval/build_timeqa_snippets.py /path/to/human_annotated_test.json eval/timeqa-snippets
"""

from __future__ import annotations

import argparse
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

YEAR = re.compile(r"\b(1[5-9]\d\d|20[0-2]\d)\b")
MIN_WORDS, MAX_WORDS, MAX_SENTENCE_WORDS = 12, 60, 90


@dataclass
class Snippet:
    name: str
    text: str


def detokenize(text: str) -> str:
    """Undo TimeQA's spaces around punctuation: "Engel ( born 1947 ) , a" -> "Engel (born 1947), a"."""
    text = re.sub(r"\s+([,.;:!?%)\]])", r"\1", text)
    text = re.sub(r"([(\[$])\s+", r"\1", text)
    text = re.sub(r"\s+(['’]s)\b", r"\1", text)
    text = re.sub(r"\s*([–-])\s*(?=\d)", r"\1", text) if re.search(r"\d\s+[–-]\s+\d", text) else text
    return re.sub(r"\s{2,}", " ", text).strip()


def sentences(paragraph: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])", detokenize(paragraph))
    return [p for p in parts if p]


def cut(paragraph: str) -> list[str]:
    """Whole sentences packed into snippets of at most MAX_WORDS words (a long sentence stands alone)."""
    out, current = [], []
    for s in sentences(paragraph):
        words = len(s.split())
        if words > MAX_SENTENCE_WORDS:
            continue
        if current and len(" ".join(current + [s]).split()) > MAX_WORDS:
            out.append(" ".join(current))
            current = []
        current.append(s)
    if current:
        out.append(" ".join(current))
    return [o for o in out if len(o.split()) >= MIN_WORDS]


def title_of(link: str) -> str:
    title = link.rsplit("/", 1)[-1]
    title = re.sub(r"_\(.*\)$", "", title)
    return re.sub(r"[^A-Za-z0-9_]+", "", title)[:40] or "page"


def article_snippets(k: int, doc: dict) -> tuple[list[Snippet], dict[int, list[int]]]:
    """The article's snippets, and for each paragraph the indexes of the snippets cut from it."""
    snippets, of_para = [], {}
    for p, para in enumerate(doc["paras"]):
        of_para[p] = []
        for piece in cut(para):
            of_para[p].append(len(snippets))
            snippets.append(Snippet(f"{k:03d}_{title_of(doc['link'])}_{len(snippets):02d}.txt", piece))
    return snippets, of_para


def gold_snippet(snippets, of_para, answer: dict) -> int | None:
    """The snippet of the answer's paragraph that states the answer (TimeQA gives paragraph + span)."""
    wanted = detokenize(answer["answer"]).lower()
    for i in of_para.get(answer["para"], []):
        if wanted and wanted in snippets[i].text.lower():
            return i
    return None


def build(data: list[dict], seed: int, answerable_n: int, unanswerable_n: int, max_per_doc: int = 2):
    rng = random.Random(seed)
    docs = list(enumerate(data))
    rng.shuffle(docs)
    corpus: list[Snippet] = []
    answerable, unanswerable = [], []
    for k, doc in docs:
        if len(answerable) >= answerable_n and len(unanswerable) >= unanswerable_n:
            break
        snippets, of_para = article_snippets(k, doc)
        if len(snippets) < 3:
            continue
        candidates = []
        for question, answers in doc["questions"]:
            if len(answers) != 1:
                continue
            g = gold_snippet(snippets, of_para, answers[0])
            years = set(YEAR.findall(question))
            if g is None or not years or not years & set(YEAR.findall(snippets[g].text)):
                continue  # the answer's snippet must state the answer and one of the question's years
            others = [i for i, s in enumerate(snippets) if i != g and set(YEAR.findall(s.text)) - years]
            if others:  # the same subject in another year
                candidates.append((question, detokenize(answers[0]["answer"]), g))
        if not candidates:
            continue
        rng.shuffle(candidates)
        make_unanswerable = len(unanswerable) < unanswerable_n and (
            len(answerable) >= answerable_n or rng.random() < unanswerable_n / (answerable_n + unanswerable_n))
        if make_unanswerable:
            question, answer, g = candidates[0]
            kept = [s for i, s in enumerate(snippets) if i != g]
            if any(answer.lower() in s.text.lower() for s in kept):
                continue  # another snippet states it too: not unanswerable
            corpus += kept
            unanswerable.append({"question": question, "answers": [], "sources": [], "answerable": False,
                                 "withheld": answer, "withheld_snippet": snippets[g].name})
        else:
            corpus += snippets
            for question, answer, g in candidates[:max_per_doc]:
                answerable.append({"question": question, "answers": [answer], "sources": [snippets[g].name],
                                   "answerable": True})
    # An answer withheld from one article must not be stated by another article's snippet either.
    unanswerable = [q for q in unanswerable if not any(q["withheld"].lower() in s.text.lower() for s in corpus)]
    return corpus, answerable[:answerable_n], unanswerable[:unanswerable_n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", type=Path, help="TimeQA's dataset/human_annotated_test.json")
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--answerable", type=int, default=120)
    ap.add_argument("--unanswerable", type=int, default=45)
    opts = ap.parse_args()
    corpus, answerable, unanswerable = build(json.loads(opts.source.read_text()), opts.seed, opts.answerable, opts.unanswerable)
    docs = opts.out / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for old in docs.glob("*.txt"):
        old.unlink()
    for s in corpus:
        (docs / s.name).write_text(s.text + "\n")
    rows = [dict(id=f"timeqa-a{i:03d}", **q) for i, q in enumerate(answerable)]
    rows += [dict(id=f"timeqa-u{i:03d}", **q) for i, q in enumerate(unanswerable)]
    with (opts.out / "qa.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(corpus)} snippets, {len(answerable)} answerable, {len(unanswerable)} unanswerable -> {opts.out}")


if __name__ == "__main__":
    main()
