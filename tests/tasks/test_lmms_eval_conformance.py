"""``harness score --protocol lmms-eval`` against lmms-eval 0.7.3's own task code, on the same answers.

For each task, the same items exist twice: as documents in the schema of the lmms-lab dataset that
lmms-eval reads, and as our official data files, made from those documents by the task's own
``prepare`` (the documents, with a tiny image each, written as a parquet copy of the dataset).
Crafted answers (right, wrong, whitespace, punctuation, case, reasoning tags, empty, number words,
articles, option letters in several forms) are scored by our CLI and by lmms-eval's YAML task
(``tests/helpers/lmms_reference.py``, in the lmms-eval venv, with the command line's default
``--reasoning_tags``). Every headline metric lmms-eval also reports and every per-sample score must
agree; expected values only ever come from running lmms-eval's code.

Where LLaVA-1.5's published predictions exist with their ground truth (MME, MMBench dev, ScienceQA;
``$HARNESS_REALDATA``), those are compared too; those cases skip when the files are absent.

MMBench runs without a judge: lmms-eval's extractor is pointed at a closed local port, so a pass no
heuristic reads goes through lmms-eval's own retries to its seeded random letter (its retry waits are
skipped). The per-question results come from the category accuracies lmms-eval writes: each synthetic
question has a category of its own.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bench.lmms_eval_env import ensure_venv
from harness.data.readers import read_jsonl
from tests.helpers.lmms_reference import lmms_references
from tests.helpers.paths import REALDATA, REPO

pytestmark = pytest.mark.slow

TOL = 1e-9
ROUND = 1_000_000  # MMBench circular pass k of question i has index i + k * ROUND
NO_JUDGE = {"OPENAI_API_URL": "http://127.0.0.1:9/v1/chat/completions", "OPENAI_API_KEY": "no-judge"}


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (30, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = tiny_png()


# ---------------------------------------------------------------------------------------------
# A case: the documents, our data root and answers file, and how the two sides' numbers pair up


@dataclass
class Case:
    name: str
    task: str  # our task
    task_yaml: str  # lmms-eval's, relative to lmms_eval/tasks
    docs: list[dict[str, Any]]  # lmms-eval's documents (no images)
    responses: list[str]  # one answer per document
    sample_ids: list[str]  # our sample id of each document
    root: Path
    answers: Path
    metrics: dict[str, tuple[str, float]]  # our metric -> (lmms-eval metric, factor applied to lmms-eval's value)
    lmms_scores: Callable[[dict[str, Any], list[dict[str, Any]]], list[float | None]]  # per doc, from the output
    spec_extra: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        return {"task_yaml": self.task_yaml, "docs": self.docs, "responses": self.responses,
                "reasoning_tags": "default", **self.spec_extra}  # fmt: skip


def image_cell() -> dict[str, Any]:
    return {"bytes": PNG, "path": None}


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def prepare(task_name: str, source: Path, root: Path) -> Path:
    """Our official files, made from the parquet copy under ``source`` by the task's own ``prepare``."""
    from harness.registry import get_task

    get_task(task_name).prepare(source, root)
    return root


def write_answers(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


def occurrence_ids(keys: list[str]) -> list[str]:
    """``<key>#<k>``: the k-th sample with that key (MME and TextVQA sample ids)."""
    seen: Counter[str] = Counter()
    out = []
    for key in keys:
        out.append(f"{key}#{seen[key]}")
        seen[key] += 1
    return out


def field_scores(key: str) -> Callable[[dict[str, Any], list[dict[str, Any]]], list[float | None]]:
    """Per-document scores lmms-eval's process_results report under ``key``."""

    def scores(ref: dict[str, Any], docs: list[dict[str, Any]]) -> list[float | None]:
        return [float(values[key]) for values in ref["per_doc"]]

    return scores


def mme_scores(ref: dict[str, Any], docs: list[dict[str, Any]]) -> list[float | None]:
    return [float(next(iter(values.values()))["score"]) for values in ref["per_doc"]]


def mmbench_scores(ref: dict[str, Any], docs: list[dict[str, Any]]) -> list[float | None]:
    """A base row's score is its question's CircularEval result (its own category's accuracy); passes: None."""
    categories = ref["files"]["submissions/mmbench_en_dev_results.json"]["category_acc"]
    return [float(categories[d["category"]]) if int(d["index"]) < ROUND else None for d in docs]


EXACT_MATCH = field_scores("exact_match")


# ---------------------------------------------------------------------------------------------
# Crafted answers shared by several tasks


TAGGED = ("<think>Let me look at the image.</think> {a}", "<think>\nfirst line\nsecond line\n</think>\n\n{a}",
          "</think> {a}", "</think>{a}", "<analysis>looking</analysis>{a}", "<think> {a}")  # fmt: skip


def tagged(answer: str) -> list[str]:
    """The answer behind each kind of reasoning block (the last one unclosed, which lmms-eval keeps)."""
    return [t.format(a=answer) for t in TAGGED]


# ---------------------------------------------------------------------------------------------
# VQAv2 val


VQA_SETS: list[tuple[str, str, str, list[str], list[str]]] = [
    # (question, answer_type, question_type, ten answers, responses)
    ("Is there a dog?", "yes/no", "is there a", ["yes"] * 10,
     ["yes", "Yes", "YES", "Yes.", "yes!", " yes\n", "\tyes ", "yes\nyes", "", "No!", "y", "yes yes",
      *tagged("Yes"), "</think> no"]),
    ("How many dogs are there?", "number", "how many", ["2"] * 6 + ["two"] * 3 + ["3"],
     ["2", "two", "Two.", "3", "2.", "two dogs", " 2 ", "zero", "2 dogs", *tagged("two")[:3]]),
    ("What is in the street?", "other", "what is in the", ["the red car"] * 4 + ["red car"] * 4 + ["car"] * 2,
     ["red car", "The red car", "a red car", "An red car", "red car!", "car", "Red Car.", "the the red car",
      "red  car", "red\ncar", "red\tcar"]),
    ("What colors are the flag?", "other", "what color are the", ["red, white"] * 3 + ["red white"] * 4
     + ["red/white"] * 3, ["red, white", "red white", "red/white", "red,white", "red-white", "red and white",
                           "Red, White.", "red;white"]),
    ("Does he know?", "other", "does the", ["dont know"] * 5 + ["don't know"] * 5,
     ["dont know", "Don't know", "don't know.", "do not know", "dont  know", "idk"]),
    ("What number is on the sign?", "number", "what number is", ["3.5"] * 7 + ["3"] * 3,
     ["3.5", "3.50", "3,5", "3.5.", "3", "three", "3 .5"]),
    ("What color is the shirt?", "other", "what color is the", ["blue"] * 2 + ["navy"] + ["dark blue"] * 7,
     ["blue", "navy", "dark blue", "Dark-blue", "dark blue shirt", "<think>navy?</think> blue"]),
    ("How many people live here?", "number", "how many people are", ["1,000"] * 10,
     ["1000", "1,000", "1 000", "1.000", "one thousand"]),
    ("How many cats are there?", "number", "how many", ["0"] * 10, ["none", "zero", "0", "None.", "no"]),
]  # fmt: skip
# Each (no-apostrophe, official) pair of the contraction table and each number word, as answer and response.
CONTRACTIONS = [
    ("arent", "aren't"), ("cant", "can't"), ("couldnt", "couldn't"), ("couldve", "could've"), ("didnt", "didn't"),
    ("doesnt", "doesn't"), ("dont", "don't"), ("hadnt", "hadn't"), ("hasnt", "hasn't"), ("havent", "haven't"),
    ("hed", "he'd"), ("hes", "he's"), ("howd", "how'd"), ("howll", "how'll"), ("hows", "how's"), ("Im", "I'm"),
    ("Ive", "I've"), ("isnt", "isn't"), ("itd", "it'd"), ("itll", "it'll"), ("lets", "let's"), ("maam", "ma'am"),
    ("mightnt", "mightn't"), ("mightve", "might've"), ("mustnt", "mustn't"), ("mustve", "must've"),
    ("neednt", "needn't"), ("notve", "not've"), ("oclock", "o'clock"), ("oughtnt", "oughtn't"), ("shant", "shan't"),
    ("shed", "she'd"), ("shes", "she's"), ("shouldve", "should've"), ("shouldnt", "shouldn't"),
    ("somebodyd", "somebody'd"), ("someoned", "someone'd"), ("someonell", "someone'll"), ("someones", "someone's"),
    ("somethingd", "something'd"), ("somethingll", "something'll"), ("thats", "that's"), ("thered", "there'd"),
    ("therere", "there're"), ("theres", "there's"), ("theyd", "they'd"), ("theyll", "they'll"), ("theyre", "they're"),
    ("theyve", "they've"), ("twas", "'twas"), ("wasnt", "wasn't"), ("wed", "we'd"), ("weve", "we've"),
    ("werent", "weren't"), ("whatll", "what'll"), ("whatre", "what're"), ("whats", "what's"), ("whatve", "what've"),
    ("whens", "when's"), ("whered", "where'd"), ("wheres", "where's"), ("whereve", "where've"), ("whod", "who'd"),
    ("wholl", "who'll"), ("whos", "who's"), ("whove", "who've"), ("whyll", "why'll"), ("whyre", "why're"),
    ("whys", "why's"), ("wont", "won't"), ("wouldve", "would've"), ("wouldnt", "wouldn't"), ("yall", "y'all"),
    ("youd", "you'd"), ("youll", "you'll"), ("youre", "you're"), ("youve", "you've"), ("ive", "i've"), ("im", "i'm"),
]  # fmt: skip
NUMBER_WORDS = ["none", "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve", "twenty", "hundred"]  # fmt: skip
VQA_TABLES: list[tuple[str, str, str, list[str], list[str]]] = [
    ("What does the sign say?", "other", "what does the", [official] * 10, [bare, official.upper()])
    for bare, official in CONTRACTIONS
] + [
    ("What number is shown?", "number", "what number is", [str(n)] * 10, [word, word.capitalize() + "."])
    for n, word in enumerate(NUMBER_WORDS[1:])
]  # fmt: skip


def vqav2_case(tmp: Path) -> Case:
    docs: list[dict[str, Any]] = []
    responses: list[str] = []
    for set_no, (question, answer_type, question_type, ten, answers) in enumerate(VQA_SETS + VQA_TABLES):
        records = [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(ten)]
        if set_no == 1:  # answer dicts that repeat (same confidence and id) leave each other out
            records = [{**r, "answer_confidence": "maybe" if i % 3 else "yes", "answer_id": 1 + i % 2}
                       for i, r in enumerate(records)]
        for response in answers:
            docs.append({
                "question_type": question_type,
                "multiple_choice_answer": Counter(ten).most_common(1)[0][0],
                "answers": records,
                "image_id": 9000 + set_no,
                "answer_type": answer_type,
                "question_id": 90_000_000 + len(docs),
                "question": question,
            })  # fmt: skip
            responses.append(response)
    write_parquet(tmp / "src/data/validation-00000-of-00001.parquet", [{**d, "image": image_cell()} for d in docs])
    root = prepare("vqav2_val", tmp / "src", tmp / "root")
    lines = [{"question_id": d["question_id"], "text": r} for d, r in zip(docs, responses)]
    return Case("vqav2_val", "vqav2_val", "vqav2/vqav2_val.yaml", docs, responses,
                [str(d["question_id"]) for d in docs], root, write_answers(tmp / "answers.jsonl", lines),
                {"overall": ("exact_match", 100.0)}, EXACT_MATCH)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# GQA


GQA_SETS: list[tuple[str, str, list[str]]] = [
    ("Is the sky blue?", "yes",
     ["yes", "Yes.", "YES", "yes!", " yes \n", "y", "", "yes\u0000", "Yes, it is.", "no", *tagged("Yes")]),
    ("Is the man sitting?", "no", ["No!", "no.", "No, he is not.", "n o", "</think> No."]),
    ("What is the woman wearing?", "t-shirt", ["t-shirt", "T-Shirt", "tshirt", "t shirt", "T-shirt.", "a t-shirt"]),
    ("On which side is the cup?", "left", ["left", "the left", "Left side", "left.", "(left)", "on the left"]),
    ("What piece of furniture is it?", "coffee table",
     ["coffee table", "Coffee Table", "coffee  table", "coffee-table", "coffee table\n\nThe end."]),
    ("What color is the cat?", "white",
     ["white", "White.", '"white"', "white\u2019", "whit\u0435", "<analysis>x</analysis>"]),
    ("Is it day?", "yes",
     ["<think>a</think> yes <think>b</think>", "<think>a <analysis>b</analysis></think> yes",
      "Sure. <think>x</think> yes", "reasoning here </think> yes", "a</think>b</think> yes",
      "<think>a</think>b</think> yes",
      "<think> a <analysis>x</analysis> yes", "</analysis> yes <think>", "<THINK>x</THINK> yes", "<think></think>",
      "<think>yes</think>", "\u00a0yes\u00a0", "yes\u200b", "\u3000yes\r\n", "<analysis>no</analysis> yes"]),
]  # fmt: skip


def gqa_case(tmp: Path) -> Case:
    docs: list[dict[str, Any]] = []
    responses: list[str] = []
    for set_no, (question, answer, answers) in enumerate(GQA_SETS):
        for response in answers:
            docs.append({"id": f"{20_000_000 + len(docs)}", "imageId": f"n{500 + set_no}", "question": question,
                         "answer": answer, "fullAnswer": f"The answer is {answer}.", "isBalanced": True})
            responses.append(response)
    write_parquet(tmp / "src/testdev_balanced_instructions/testdev-00000-of-00001.parquet", docs)
    images = [{"id": image, "image": image_cell()} for image in sorted({d["imageId"] for d in docs})]
    write_parquet(tmp / "src/testdev_balanced_images/testdev-00000-of-00001.parquet", images)
    root = prepare("gqa", tmp / "src", tmp / "root")
    lines = [{"question_id": d["id"], "text": r} for d, r in zip(docs, responses)]
    return Case("gqa", "gqa", "gqa/gqa.yaml", docs, responses, [d["id"] for d in docs], root,
                write_answers(tmp / "answers.jsonl", lines), {"accuracy": ("exact_match", 100.0)}, EXACT_MATCH)


# ---------------------------------------------------------------------------------------------
# TextVQA val


TEXTVQA_SETS: list[tuple[str, list[str], list[str]]] = [
    ("what brand is this?", ["coca cola"] * 5 + ["coca-cola"] * 3 + ["Coca Cola"] * 2,
     ["Coca-Cola", "coca cola", "COCA COLA.", "cocacola", "coca cola\n", "", "pepsi", *tagged("coca cola")]),
    ("how many bottles are there?", ["2"] * 4 + ["two"] * 4 + ["2."] * 2, ["two", "2", "Two.", "2 bottles", "3"]),
    ("what band is on the poster?", ["the beatles"] * 6 + ["beatles"] * 4,
     ["The Beatles", "beatles", "a beatles", "the beatles!", "Beatles."]),
    ("is this open?", ["yes"] * 10, ["yes", "Yes.", "YES!", "</think> yes", "yes\tyes"]),
    ("what does the sign say?", ["stop"] * 3 + ["stop sign"] * 5 + ["STOP"] * 2,
     ["stop", "Stop!", "stop sign\n", "STOP SIGN", "<think> stop", "it says stop"]),
    ("whose dog is it?", ["dog's"] * 6 + ["dogs"] * 4, ["dog's", "dogs", "dog 's", "Dog's.", "its"]),
    ("what restaurant is this?", ["mcdonald's"] * 10, ["McDonald's", "mcdonalds", "mc donald's"]),
    ("how much does it cost?", ["1,000"] * 5 + ["1000"] * 5, ["1000", "1,000", "1.000", "$1,000", "one thousand"]),
    ("what time is it?", ["3:00"] * 10, ["3:00", "3 00", "300", "three o'clock", "3:00.", "isnt", "Im"]),
]  # fmt: skip


def textvqa_case(tmp: Path) -> Case:
    docs: list[dict[str, Any]] = []
    responses: list[str] = []
    for set_no, (question, ten, answers) in enumerate(TEXTVQA_SETS):
        for response_no, response in enumerate(answers):
            image_id = f"{0xABC000 + set_no * 64 + response_no // 2:06x}"  # two questions on most images
            text = question if response_no % 2 == 0 else f"{question[:-1]} here?"
            docs.append({"image_id": image_id, "question_id": 70_000 + len(docs), "question": text,
                         "question_tokens": text.split(), "image_width": 2, "image_height": 2,
                         "flickr_original_url": "", "flickr_300k_url": "", "answers": ten,
                         "image_classes": ["Poster"], "set_name": "val", "ocr_tokens": ["stop", "cola"]})  # fmt: skip
            responses.append(response)
    write_parquet(tmp / "src/data/validation-00000-of-00001.parquet", [{**d, "image": image_cell()} for d in docs])
    root = prepare("textvqa", tmp / "src", tmp / "root")
    lines = [{"question_id": d["image_id"], "text": r} for d, r in zip(docs, responses)]
    return Case("textvqa", "textvqa", "textvqa/textvqa_val.yaml", docs, responses,
                occurrence_ids([d["image_id"] for d in docs]), root, write_answers(tmp / "answers.jsonl", lines),
                {"accuracy": ("exact_match", 100.0)}, EXACT_MATCH)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# ScienceQA (IMG)


SQA_PROBLEMS: list[tuple[str, str, list[str], int, bool, list[str]]] = [
    # (question, hint, choices, answer index, has image, responses; "{L}" is the answer's letter)
    ("Which animal is shown?", "", ["cat", "dog"], 1, True,
     ["{L}", "{l}", "{L}.", "{l}.", "{L}. dog", "({L})", "{L})", "The answer is {L}.", " {L}\n", "", "A",
      "{L}{L}", "{L},", "Answer: {L}", "{L}. ", "**{L}**", *tagged("{L}")]),
    ("Which is a mammal?", "Mammals have fur.", ["whale", "shark", "trout"], 0, True,
     ["{L}", "{l}", "{L}. whale", "a. whale", "{L}:", "C", "  {L}.  "]),
    ("Which word is a noun?", "", ["run", "blue", "table", "quickly"], 2, False, ["{L}", "B"]),
    ("Which state is farthest north?", "Look at the map.", ["Ohio", "Texas", "Maine", "Utah"], 2, True,
     ["{L}", "{L}. Maine", "{L}.Maine", "Maine", "D. Utah", "{L} ", "</think> {L}", "<think>A or C?</think> {L}."]),
    ("Which has the most energy?", "", ["ice", "water", "steam", "plasma", "rock"], 4, True,
     ["{L}", "{l}", "F", "{L}.", "E. rock", "e. rock"]),
    ("Which sentence is correct?", "", ["Yes", "No"], 0, False, ["{L}"]),
]  # fmt: skip
LETTERS = "ABCDE"


def scienceqa_case(tmp: Path) -> Case:
    rows: list[dict[str, Any]] = []
    responses: list[str] = []
    for question, hint, choices, answer, has_image, answers in SQA_PROBLEMS:
        letter = LETTERS[answer]
        for response in answers:
            rows.append({"image": image_cell() if has_image else None, "question": question, "choices": choices,
                         "answer": answer, "hint": hint, "task": "closed choice", "grade": "grade5",
                         "subject": "natural science", "topic": "biology", "category": "Classification",
                         "skill": "Identify", "lecture": "", "solution": ""})  # fmt: skip
            responses.append(response.format(L=letter, l=letter.lower()))
    write_parquet(tmp / "src/ScienceQA-FULL/test-00000-of-00001.parquet", rows)
    root = prepare("scienceqa", tmp / "src", tmp / "root")
    ids = [f"hf-test-{n:04d}" for n in range(len(rows))]
    lines = [{"question_id": pid, "text": r} for pid, r in zip(ids, responses)]
    keep = [n for n, row in enumerate(rows) if row["image"] is not None]  # ScienceQA-IMG: image problems only
    docs = [{k: v for k, v in rows[n].items() if k != "image"} for n in keep]
    return Case("scienceqa", "scienceqa", "scienceqa/scienceqa_img.yaml", docs, [responses[n] for n in keep],
                [ids[n] for n in keep], root, write_answers(tmp / "answers.jsonl", lines),
                {"img_accuracy": ("exact_match", 100.0)}, EXACT_MATCH)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# MME


MME_PAIRS: list[tuple[str, str]] = [  # answers to an image's (Yes, No) question pair
    ("Yes", "No"), ("yes.", "no."), ("YES", "NO"), ("Yes, there is.", "No, there is not."), ("y", "n"),
    ("Y.", "N."), ("<think>x</think> Yes", "</think> No"), ("<analysis>a</analysis>yes", "<think>b</think>no"),
    ("<think> yes", "<think> no"), ("", "nope"), ("Not sure", "I don't know"), (" yes\n", "\nno "),
    ("Yes!", "No!"), ("yes and no", "noo"), ("The answer is yes", "none"), ("no", "yes"), ("ye", "nah"),
    ("Y", "N"), ("yes\n\nBecause the dog is visible.", "no\n\nThere is none."), ("Yes.", "Yes."),
]  # fmt: skip
MME_SUBTASKS = ("existence", "count", "artwork", "OCR", "commonsense_reasoning", "code_reasoning", "celebrity")
NESTED = frozenset({"artwork", "celebrity", "landmark", "posters", "scene"})  # MME's images/ + questions_answers_YN/


def mme_qid(category: str, name: str) -> str:
    """LLaVA's question_id for an image of the MME release folder."""
    return f"{category}/images/{name}" if category in NESTED else f"{category}/{name}"


def mme_case(tmp: Path) -> Case:
    docs: list[dict[str, Any]] = []
    responses: list[str] = []
    for pair_no, (yes_answer, no_answer) in enumerate(MME_PAIRS):
        category = MME_SUBTASKS[pair_no % len(MME_SUBTASKS)]
        name = f"{pair_no:04d}.png"
        suffix = "  Please answer yes or no." if pair_no == 3 else " Please answer yes or no."
        for question, truth, response in (("Is there a dog in the image?", "Yes", yes_answer),
                                          ("Is there a cat in the image?", "No", no_answer)):  # fmt: skip
            docs.append({"question_id": f"{category}/{name}", "question": question + suffix, "answer": truth,
                         "category": category})
            responses.append(response)
    write_parquet(tmp / "src/data/test-00000-of-00001.parquet", [{**d, "image": image_cell()} for d in docs])
    root = prepare("mme", tmp / "src", tmp / "root")
    qids = [mme_qid(d["category"], d["question_id"].split("/", 1)[1]) for d in docs]
    lines = [{"question_id": q, "text": r} for q, r in zip(qids, responses)]
    return Case("mme", "mme", "mme/mme.yaml", docs, responses, occurrence_ids(qids), root,
                write_answers(tmp / "answers.jsonl", lines), MME_METRICS, mme_scores)  # fmt: skip


MME_METRICS = {"perception": ("mme_perception_score", 1.0), "cognition": ("mme_cognition_score", 1.0)}


# ---------------------------------------------------------------------------------------------
# MMBench dev (circular passes as rows)


# (options, answer index, hint, one response template per pass). Templates: {ans} the pass's right letter,
# {low} it lower-cased, {wrong} another letter, {text} the right option's text, {wtext} a wrong option's text.
MMB_MATCHED: list[tuple[list[str], int, str | None, list[str]]] = [
    (["cat", "dog"], 0, None, ["{ans}", "{ans}."]),
    (["red", "blue", "green", "pink"], 2, "Look at the colours.", ["({ans})", "{ans})", "{ans},", "{ans}:"]),
    (["one", "two", "three", "four"], 1, None,
     ["<think>Option A looks wrong, maybe B.</think> {ans}", "</think> {ans}", "<analysis>x</analysis>{ans}",
      "<think>\n{wrong} or {ans}?\n</think>\n\n{ans}"]),
    (["apple", "banana", "cherry"], 1, None, ["{text}", "It is a {text}.", "{ans}. {text}"]),
    (["north", "south", "east", "west"], 3, None,
     ["The answer is {ans}", "Answer: {ans}", "I choose {ans}.", "{ans}\n"]),
    (["dog", "cat", "bird", "fish"], 0, None, ["A {text} is in the image", "{ans}", "{ans}", "{ans}"]),
    (["left", "right"], 0, None, ["{wrong}", "{ans}"]),
    (["spring", "summer", "autumn", "winter"], 2, None, ["E", "{ans}", "{ans}", "{ans}"]),
    (["circle", "square", "star"], 1, "A hint.", ["<think> {ans}", " {ans} \n", "\n{ans}"]),
    (["car", "bus", "train", "plane"], 3, None, ["{ans}. {text}", "Option {ans}", "{ans}", "{ans}."]),
    (["tea", "coffee"], 1, None, ["{wtext}", "{ans}"]),
    (["up", "down"], 0, None, ["{low}", "{wrong}"]),
    (["gold", "silver", "bronze", "iron"], 0, None, ["{ans}", "{ans}", "{ans}", "{wrong}."]),
    (["A", "B"], 1, None, ["{ans}", "{ans}"]),
    (["mouse", "horse", "goat"], 2, None, ["{wrong}. {text}", "{ans}", "{ans}"]),
    (["pen", "ink", "cup", "mug"], 1, None,
     ["({ans}) {text}", "{ans}: {text}", "The correct option is {ans}.", "<think>a</think>{ans} <think>b</think>"]),
]  # fmt: skip
# Groups whose passes are right where a heuristic reads them, with one pass none reads: lmms-eval then asks its
# (here absent) judge and falls back to a seeded random letter.
MMB_UNMATCHED: list[tuple[list[str], int, str | None, list[str]]] = [
    (["cat", "dog"], 0, None, ["", "{ans}"]),
    (["cat", "dog"], 1, None, ["{low}", "{ans}"]),
    (["red", "blue", "green", "pink"], 2, None, ["**{ans}**", "{ans}", "{ans}", "{ans}"]),
    (["yes", "no"], 0, None, ["{ans} {wrong}", "{ans}"]),
    (["hot", "cold"], 1, None, ["I am not sure", "{ans}"]),
    (["one", "two", "three", "four"], 3, None, ["{ans}", "{ans}", "{ans}", "none of these"]),
    (["sun", "moon"], 0, None, ["{ans}", "Either {ans} or {wrong}"]),
    (["ant", "bee", "fly"], 2, None, ["{ans}", "<think> maybe {wrong}", "{ans}"]),
    (["red", "green"], 1, None, ["{ans}!", "{ans}"]),
    (["x", "y"], 0, None, ["[{ans}]", "{ans}"]),
]  # fmt: skip


def mmbench_docs(questions: list[tuple[list[str], int, str | None, list[str]]], first: int) -> tuple[
    list[dict[str, Any]], list[str]
]:
    """Every circular pass of each question as a document (options rotated by the pass number), with
    its response; question i has category ``q<index>`` of its own."""
    docs: list[dict[str, Any]] = []
    responses: list[str] = []
    for number, (options, answer, hint, templates) in enumerate(questions):
        base = first + number
        n = len(options)
        assert len(templates) == n
        for k in range(n):
            rotated = options[k:] + options[:k]
            right = (answer - k) % n
            wrong = (right + 1) % n
            cells = {c: (rotated[i] if i < n else None) for i, c in enumerate("ABCD")}
            docs.append({"index": base + k * ROUND, "question": f"Question {base}?", "hint": hint, **cells,
                         "answer": "ABCD"[right], "category": f"q{base}", "L2-category": "attribute_reasoning",
                         "source": "synthetic", "split": "dev", "comment": None})  # fmt: skip
            responses.append(templates[k].format(ans="ABCD"[right], low="abcd"[right], wrong="ABCD"[wrong],
                                                 text=rotated[right], wtext=rotated[wrong]))  # fmt: skip
    return docs, responses


def mmbench_case_from(name: str, tmp: Path, docs: list[dict[str, Any]], responses: list[str]) -> Case:
    write_parquet(tmp / "src/data/dev-00000-of-00001.parquet", [{**d, "image": image_cell()} for d in docs])
    root = prepare("mmbench", tmp / "src", tmp / "root")
    lines = [{"question_id": d["index"], "text": r} for d, r in zip(docs, responses)]
    return Case(name, "mmbench", "mmbench/mmbench_en_dev.yaml", docs, responses, [str(d["index"]) for d in docs],
                root, write_answers(tmp / "answers.jsonl", lines), {"circular": ("gpt_eval_score", 1.0)},
                mmbench_scores, {"env": NO_JUDGE, "no_retry_waits": True})  # fmt: skip


def mmbench_case(tmp: Path) -> Case:
    return mmbench_case_from("mmbench", tmp, *mmbench_docs(MMB_MATCHED, 1))


def mmbench_unmatched_case(tmp: Path) -> Case:
    return mmbench_case_from("mmbench_unmatched", tmp, *mmbench_docs(MMB_UNMATCHED, 101))


# ---------------------------------------------------------------------------------------------
# LLaVA-1.5-13B's published predictions


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found: {path} (set HARNESS_REALDATA)")
    return path


def real_mme_case(tmp: Path) -> Case:
    """The eval tool's ground truth, LLaVA's question file and answers; documents from our joined samples."""
    from tasks.mme import MMETask

    mme = REALDATA / "mme"
    answers = need(mme / "answers/llava-v1.5-13b.jsonl")
    (tmp / "MME/eval_tool").mkdir(parents=True)
    (tmp / "MME/llava_mme.jsonl").symlink_to(need(mme / "llava_mme.jsonl"))
    (tmp / "MME/eval_tool/Your_Results").symlink_to(need(mme / "eval_tool/Your_Results"))
    task = MMETask()
    samples = task.load(tmp)
    texts = task.match_answers(samples, read_jsonl(answers))
    docs = [{"question_id": f"{s.metadata['category']}/{s.metadata['image_name'].rsplit('.', 1)[0]}",
             "question": s.metadata["eval_question"], "answer": s.target, "category": s.metadata["category"]}
            for s in samples]  # fmt: skip
    return Case("real_mme", "mme", "mme/mme.yaml", docs, [texts[s.id] for s in samples], [s.id for s in samples],
                tmp, answers, MME_METRICS, mme_scores)  # fmt: skip


def real_scienceqa_case(tmp: Path) -> Case:
    """LLaVA's question file and splits, problems rebuilt from eval_science_qa.py's output (truth, option count)."""
    sqa = REALDATA / "scienceqa"
    output = json.loads(need(sqa / "answers/llava-v1.5-13b_output.jsonl").read_text(encoding="utf-8"))
    items = output["correct"] + output["incorrect"]
    questions = json.loads(need(sqa / "llava_test_CQM-A.json").read_text(encoding="utf-8"))
    n_choices = {}
    for entry in questions:
        human = entry["conversations"][0]["value"]
        n_choices[str(entry["id"])] = sum(1 for c in LETTERS if f"\n{c}. " in human)
    folder = tmp / "scienceqa"
    folder.mkdir(parents=True)
    (folder / "llava_test_CQM-A.json").symlink_to(sqa / "llava_test_CQM-A.json")
    (folder / "pid_splits.json").symlink_to(need(sqa / "pid_splits.json"))
    problems = {}
    docs: list[dict[str, Any]] = []
    responses: list[str] = []
    ids: list[str] = []
    for item in items:
        pid = str(item["question_id"])
        choices = [f"option {i}" for i in range(n_choices[pid])]
        problem = {"question": "", "choices": choices, "answer": LETTERS.index(item["ground_truth"]), "hint": "",
                   "image": "image.png" if item["is_multimodal"] else None, "split": "test"}  # fmt: skip
        problems[pid] = problem
        if item["is_multimodal"]:
            docs.append({k: problem[k] for k in ("question", "choices", "answer", "hint")})
            responses.append(item["pred"])
            ids.append(pid)
    (folder / "problems.json").write_text(json.dumps(problems), encoding="utf-8")
    lines = [{"question_id": item["question_id"], "prompt": item["question"], "text": item["pred"]} for item in items]
    return Case("real_scienceqa", "scienceqa", "scienceqa/scienceqa_img.yaml", docs, responses, ids, tmp,
                write_answers(tmp / "answers.jsonl", lines), {"img_accuracy": ("exact_match", 100.0)}, EXACT_MATCH)


def recovered_hint(prompt: str, row: dict[str, str]) -> str | None:
    """The hint in front of LLaVA's prompt (hint line, question, option lines); None when there is none."""
    tail = row["question"] + "".join(f"\n{c}. {row[c]}" for c in "ABCD" if row[c] != "")
    assert prompt.endswith(tail), row["index"]
    head = prompt[: -len(tail)]
    return head[:-1] if head else None


def real_mmbench_case(tmp: Path) -> Case:
    """The dev rows of LLaVA's upload file (question, options, answer), hints from its answers' prompts, one
    category per question; predictions from the answers file."""
    mmb = REALDATA / "mmbench"
    answers = need(mmb / "answers/mmbench_dev_20230712/llava-v1.5-13b.jsonl")
    derived = need(mmb / "answers_upload/mmbench_dev_20230712/llava-v1.5-13b.xlsx.derived.csv")
    records = {int(r["question_id"]): r for r in read_jsonl(answers)}
    with derived.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    docs = []
    for row in rows:
        index = int(row["index"])
        docs.append({"index": index, "question": row["question"], "hint": recovered_hint(records[index]["prompt"], row),
                     **{c: row[c] or None for c in "ABCD"}, "answer": row["answer"], "category": f"q{index % ROUND}",
                     "L2-category": "coarse_perception", "source": "realdata", "split": row["split"],
                     "comment": None})  # fmt: skip
    case = mmbench_case_from("real_mmbench", tmp, docs, [str(records[d["index"]]["text"]) for d in docs])
    case.answers = answers
    return case


BUILDERS: dict[str, Callable[[Path], Case]] = {
    "vqav2_val": vqav2_case,
    "gqa": gqa_case,
    "textvqa": textvqa_case,
    "scienceqa": scienceqa_case,
    "mme": mme_case,
    "mmbench": mmbench_case,
    "mmbench_unmatched": mmbench_unmatched_case,
    "real_mme": real_mme_case,
    "real_scienceqa": real_scienceqa_case,
    "real_mmbench": real_mmbench_case,
}


# ---------------------------------------------------------------------------------------------
# Running both sides (all cases at once: one lmms-eval process, our CLI runs beside it)


@dataclass
class Outcome:
    case: Case | None = None
    ours: dict[str, Any] | None = None  # `harness score --json`
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # our samples log, by sample id
    reference: dict[str, Any] | None = None
    problem: str | None = None  # why the case could not be built or run
    skip: str | None = None


def run_ours(case: Case, out: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    cmd = [sys.executable, "-m", "harness", "score", case.task, "--answers", str(case.answers), "--data-root",
           str(case.root), "--protocol", "lmms-eval", "--json", "--output-dir", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=dict(os.environ))
    if proc.returncode != 0:
        raise RuntimeError(f"harness score {case.task} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    (log,) = out.glob(f"*/samples/{case.task}.jsonl")
    return json.loads(proc.stdout), {str(r["id"]): r for r in read_jsonl(log)}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    results: dict[str, Outcome] = {}
    for name, build in BUILDERS.items():
        try:
            results[name] = Outcome(case=build(tmp_path_factory.mktemp(name)))
        except pytest.skip.Exception as exc:
            results[name] = Outcome(skip=str(exc))
        except Exception as exc:
            results[name] = Outcome(problem=f"building the case failed: {exc!r}")
    ready = {name: o for name, o in results.items() if o.case is not None}
    if not ready:
        return results
    try:
        python = ensure_venv(log=lambda line: print(line, file=sys.stderr))
    except RuntimeError as exc:
        pytest.fail(f"could not build the lmms-eval venv: {exc}")

    def ours(name: str) -> None:
        outcome = ready[name]
        assert outcome.case is not None
        try:
            outcome.ours, outcome.records = run_ours(outcome.case, tmp_path_factory.mktemp(f"{name}-out"))
        except Exception as exc:
            outcome.problem = str(exc)

    with ThreadPoolExecutor(max_workers=2) as pool:
        reference = pool.submit(lmms_references, [o.case.spec() for o in ready.values() if o.case], python)
        list(pool.map(ours, list(ready)))
        for outcome, ref in zip(ready.values(), reference.result()):
            if "error" in ref:
                outcome.problem = outcome.problem or f"lmms-eval reference failed:\n{ref['error']}"
            outcome.reference = ref
    return results


def ready_outcome(outcomes: dict[str, Outcome], name: str) -> tuple[Case, dict[str, Any], dict[str, Any]]:
    outcome = outcomes[name]
    if outcome.skip is not None:
        pytest.skip(outcome.skip)
    if outcome.problem is not None:
        pytest.fail(outcome.problem)
    assert outcome.case is not None and outcome.ours is not None and outcome.reference is not None
    return outcome.case, outcome.ours, outcome.reference


def sample_mismatches(case: Case, ref: dict[str, Any], records: dict[str, dict[str, Any]]) -> Iterator[str]:
    """One line per document whose score differs (or that one side did not score)."""
    expected = case.lmms_scores(ref, case.docs)
    assert len(expected) == len(case.docs) == len(case.sample_ids)
    for number, (sid, want) in enumerate(zip(case.sample_ids, expected)):
        record = records.get(sid)
        got = None if record is None else record["score"]
        if (got is None) != (want is None) or (want is not None and abs(float(got) - want) > TOL):
            parsed = None if record is None else record.get("parsed")
            yield (f"doc {number} (our id {sid}) answer {case.responses[number]!r}: ours {got} (parsed {parsed!r}), "
                   f"lmms-eval {want} (scored {ref['responses'][number]!r})")


CASES = list(BUILDERS)


@pytest.mark.parametrize("name", CASES)
def test_headline_metrics_match_lmms_eval(outcomes: dict[str, Outcome], name: str) -> None:
    case, ours, ref = ready_outcome(outcomes, name)
    problems = []
    for metric, (lmms_metric, factor) in case.metrics.items():
        want = ref["metrics"][lmms_metric] * factor
        got = ours["scores"][metric]
        if abs(got - want) > TOL:
            problems.append(f"{metric}: ours {got!r}, lmms-eval {lmms_metric} x {factor:g} = {want!r}")
    assert not problems, f"{name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", CASES)
def test_per_sample_scores_match_lmms_eval(outcomes: dict[str, Outcome], name: str) -> None:
    case, _, ref = ready_outcome(outcomes, name)
    assert len(ref["per_doc"]) == len(case.docs)
    problems = list(sample_mismatches(case, ref, outcomes[name].records))
    assert not problems, f"{name}: {len(problems)} of {len(case.docs)} documents differ:\n" + "\n".join(problems)


def test_every_sample_we_score_is_a_document(outcomes: dict[str, Outcome]) -> None:
    """Our scored samples are exactly lmms-eval's documents (ScienceQA: the image problems; MMBench: base rows)."""
    for name in ("scienceqa", "mmbench", "mme"):
        case, _, ref = ready_outcome(outcomes, name)
        scored = {sid for sid, r in outcomes[name].records.items() if r["score"] is not None}
        expected = {sid for sid, value in zip(case.sample_ids, case.lmms_scores(ref, case.docs)) if value is not None}
        assert scored == expected, name


def test_reference_applies_lmms_eval_reasoning_default(outcomes: dict[str, Outcome]) -> None:
    """The reference saw what lmms-eval's evaluator passes on: tags cut, surrounding whitespace stripped,
    an unclosed block left alone."""
    case, _, ref = ready_outcome(outcomes, "gqa")
    seen = dict(zip(case.responses, ref["responses"]))
    assert seen["<think>Let me look at the image.</think> Yes"] == "Yes"
    assert seen["</think> No."] == "No."
    assert seen["<think> Yes"] == "<think> Yes"
    assert seen[" yes \n"] == "yes"
