"""lmms-eval 0.7.3's own code for its GPT-judged tasks against ``harness score --protocol lmms-eval``.

Both sides grade the same answers through one scripted judge, a real HTTP server on 127.0.0.1
(``tests/helpers/replay_server.py``): lmms-eval's task code runs in its own venv through
``tests/helpers/lmms_reference.py`` (``mmvet/mmvet.yaml``, ``llava-in-the-wild/llava-in-the-wild.yaml``,
``mmbench/mmbench_en_dev.yaml`` with its GPT choice extractor), ours through the CLI. The judge answers
from the prompt alone (a hash of the message picks the reply) unless an item has a scripted reply
sequence (its n-th request gets the n-th reply, the last one repeated; the count restarts for each
side), so equal messages get equal replies on both sides. Every expected value comes from lmms-eval's
run, never from reading its code.

Compared per item: the judge requests (messages byte for byte, model, temperature, max_tokens, how
many and in which order), the per-sample scores and the headline metrics. A request belongs to the item
whose marker text (its question, for MMBench a piece of the answer) its message holds.

Differences documented as deliberate are tested as such: MM-Vet stops re-asking an out-of-range grade
after ``LMMS_SAME_TEMPERATURE_LIMIT`` asks (lmms-eval asks until the grade is in range), and a review
whose judge call fails in transport is left out of LLaVA-Bench's means (lmms-eval averages in (-1, -1)).
lmms-eval's retry pauses are skipped (``no_retry_waits``): they change timing only.
"""

from __future__ import annotations

import ast
import base64
import difflib
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bench.lmms_eval_env import venv_dir
from harness.data.readers import read_jsonl
from tasks.mmvet.scorer import LMMS_SAME_TEMPERATURE_LIMIT
from tests.helpers.lmms_reference import lmms_references
from tests.helpers.paths import REALDATA, REPO
from tests.helpers.replay_server import ReplayServer, last_user_text

pytestmark = pytest.mark.slow

JUDGE_MODEL = "gpt-4o-2024-11-20"
API_KEY = "sk-conformance-test"
NO_PROXY = "127.0.0.1,localhost"
PROMPTS = REALDATA / "judge_prompts"
UNOWNED = "(no item)"
Body = dict[str, Any]


# ----------------------------------------------------------------------------------------------
# The scripted judge


class DropConnection(Exception):
    """Raised by the script for a request that must fail in transport: the server thread dies and the
    connection closes without a reply."""


def digest(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16)


def hash_reply(prompt: str) -> str:
    """A reply of the kind the prompt asks for, picked by a hash of the prompt."""
    h = digest(prompt)
    if prompt.endswith("Your output: "):  # MMBench choice extractor
        letter = "ABCDE"[h % 5]
        return [letter, f"{letter}.", f"Option {letter}", f"The answer is {letter}"][h // 5 % 4]
    if prompt.startswith("[Context]\n"):  # LLaVA-Bench review
        ref, model = 5 + h % 6, 1 + h // 6 % 10
        forms = [f"{ref} {model}\nThe reference is more complete.", f"{ref}, {model}\n\nAssistant 2 is brief.",
                 f"{ref};{model}", f"Assistant 1: {ref}\nAssistant 2: {model}"]  # fmt: skip
        return forms[h // 60 % 4]
    grade = h % 11 / 10  # MM-Vet grade
    return [f"{grade:.1f}", f"{grade:.1f} the prediction covers part of it", f"{grade}"][h // 11 % 3]


@dataclass
class Script:
    """Replies by marker: a scripted sequence (the n-th request holding the marker gets the n-th reply,
    the last one repeated), a dropped connection for a ``drop`` marker, else ``hash_reply``."""

    sequences: dict[str, list[str]] = field(default_factory=dict)
    drop: set[str] = field(default_factory=set)
    served: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, prompt: str) -> str:
        if any(marker in prompt for marker in self.drop):
            raise DropConnection(prompt[-80:])
        for marker, replies in self.sequences.items():
            if marker in prompt:
                with self.lock:
                    n = self.served[marker]
                    self.served[marker] += 1
                return replies[min(n, len(replies) - 1)]
        return hash_reply(prompt)


@dataclass
class Judge:
    server: ReplayServer
    script: Script

    def take(self) -> list[Body]:
        """The request bodies since the last take, in arrival order; the scripted sequences restart."""
        with self.script.lock:
            bodies = [r["body"] for r in self.server.requests]
            self.server.requests.clear()
            self.script.served.clear()
        return bodies


@pytest.fixture(scope="module")
def judge() -> Iterator[Judge]:
    script = Script()
    server = ReplayServer(replies=script, model_id=JUDGE_MODEL)
    server._httpd.handle_error = lambda request, address: None  # a dropped connection is intended: no traceback
    server.start()
    try:
        yield Judge(server, script)
    finally:
        server.close()


@pytest.fixture(scope="module")
def lmms_python() -> Path:
    python = venv_dir() / "bin" / "python"
    if not python.is_file():
        pytest.skip(f"the lmms-eval venv is not built ({python}); python3 bench/lmms_eval_env.py builds it")
    return python


def lmms_tasks_dir() -> Path:
    found = sorted(venv_dir().glob("lib/python*/site-packages/lmms_eval/tasks"))
    if not found:
        pytest.skip(f"lmms_eval is not installed in {venv_dir()}")
    return found[0]


# ----------------------------------------------------------------------------------------------
# Cases and their two runs


@dataclass(frozen=True)
class Item:
    """One sample: our id, the marker its judge messages hold (None: it should never reach the judge),
    scripted replies (empty: ``hash_reply``), whether its calls fail in transport."""

    id: str
    mark: str | None
    replies: tuple[str, ...] = ()
    drop: bool = False


@dataclass
class Case:
    """One set of answers for one task, in both layouts."""

    name: str
    task: str  # our task name
    task_yaml: str  # lmms-eval's, under lmms_eval/tasks
    items: list[Item]
    docs: list[dict[str, Any]]  # lmms-lab rows, in the order of ``responses``
    responses: list[str]
    root: Path  # our data root
    answers: list[dict[str, Any]]  # our answers JSONL lines
    extra_args: tuple[str, ...] = ()
    kind: str | None = None  # cases without markers: the text their task's judge messages start with

    def marks(self, prompt: str) -> bool:
        return any(item.mark and item.mark in prompt for item in self.items)

    def spec(self, env: dict[str, str]) -> dict[str, Any]:
        return {"task_yaml": self.task_yaml, "docs": self.docs, "responses": self.responses,
                "reasoning_tags": "default", "env": env, "no_retry_waits": True}  # fmt: skip


@dataclass
class Outcome:
    """A case graded by lmms-eval and by us: results and the judge requests of each item."""

    case: Case
    lmms: dict[str, Any]  # lmms_reference's output
    lmms_calls: dict[str, list[Body]]
    ours: dict[str, Any]  # harness score --json
    samples: dict[str, dict[str, Any]]  # our per-sample records by id
    ours_calls: dict[str, list[Body]]


def lmms_env(url: str) -> dict[str, str]:
    """What points lmms-eval's judges at the server: llm_judge's OpenAIProvider reads OPENAI_API_URL as
    a base URL, MMBench's evaluator as the full chat-completions URL; MODEL_VERSION names the model."""
    return {"OPENAI_API_KEY": API_KEY, "OPENAI_API_URL": url, "API_TYPE": "openai", "MODEL_VERSION": JUDGE_MODEL,
            "NO_PROXY": NO_PROXY, "no_proxy": NO_PROXY}  # fmt: skip


def register(judge: Judge, cases: Sequence[Case]) -> None:
    for case in cases:
        for item in case.items:
            if item.mark and item.replies:
                judge.script.sequences[item.mark] = list(item.replies)
            if item.mark and item.drop:
                judge.script.drop.add(item.mark)


def split_calls(bodies: Sequence[Body], items: Sequence[Item]) -> dict[str, list[Body]]:
    """Each request under the one item whose marker its message holds (UNOWNED: none or several)."""
    out: dict[str, list[Body]] = {}
    for body in bodies:
        prompt = last_user_text(body)
        owners = [item.id for item in items if item.mark and item.mark in prompt]
        out.setdefault(owners[0] if len(owners) == 1 else UNOWNED, []).append(body)
    return out


def score_ours(case: Case, judge: Judge, out: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[Body]]:
    """``harness score`` with the lmms-eval protocol and the server as judge; its own cache and results."""
    judge.take()
    answers = out / "answers.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    answers.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in case.answers), encoding="utf-8")
    results = out / "results"
    argv = ["score", case.task, "--answers", str(answers), "--data-root", str(case.root), "--protocol", "lmms-eval",
            "--judge", f"openai:{JUDGE_MODEL}", "--judge-base-url", judge.server.url, "--json",
            "--output-dir", str(results), *case.extra_args]  # fmt: skip
    env = {**os.environ, "OPENAI_API_KEY": API_KEY, "HARNESS_CACHE_DIR": str(out / "harness-cache"),
           "NO_PROXY": NO_PROXY, "no_proxy": NO_PROXY}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *argv], capture_output=True, text=True, timeout=600, env=env, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (log,) = results.glob(f"*/samples/{case.task}.jsonl")
    samples = {str(r["id"]): r for r in read_jsonl(log)}
    return json.loads(proc.stdout), samples, judge.take()


def case_calls(case: Case, bodies: Sequence[Body]) -> dict[str, list[Body]]:
    """A case's requests by item, or all under "all" for a case without markers."""
    return split_calls(bodies, case.items) if case.kind is None else {"all": list(bodies)}


def grade_both(cases: Sequence[Case], judge: Judge, python: Path, env: dict[str, str], out: Path) -> dict[str, Outcome]:
    """lmms-eval on every case in one process, then ours case by case. A request of the lmms-eval run
    belongs to the case one of whose markers it holds, else to the marker-less case of its kind."""
    register(judge, cases)
    judge.take()
    references = lmms_references([case.spec(env) for case in cases], python)
    per_case: dict[str, list[Body]] = {case.name: [] for case in cases}
    stray: list[Body] = []  # no owner, or several: unowned in every case with markers
    for body in judge.take():
        prompt = last_user_text(body)
        owners = [c.name for c in cases if c.marks(prompt)]
        owners = owners or [c.name for c in cases if c.kind is not None and prompt.startswith(c.kind)]
        (per_case[owners[0]] if len(owners) == 1 else stray).append(body)
    outcomes = {}
    for case, reference in zip(cases, references):
        lmms_calls = case_calls(case, per_case[case.name] + (stray if case.kind is None else []))
        ours, samples, bodies = score_ours(case, judge, out / case.name)
        outcomes[case.name] = Outcome(case, reference, lmms_calls, ours, samples, case_calls(case, bodies))
    return outcomes


# ----------------------------------------------------------------------------------------------
# Comparing


def wire(body: Body) -> dict[str, Any]:
    """What a judge request says: model, messages, temperature and the token limit."""
    return {key: body.get(key) for key in ("model", "messages", "temperature", "max_tokens")}


def render(requests: Sequence[dict[str, Any]]) -> list[str]:
    """Requests (``wire`` dicts, or just their messages) as lines: a header, then each message's text."""
    out: list[str] = []
    for n, request in enumerate(requests, 1):
        settings = {k: v for k, v in request.items() if k != "messages"}
        out.append(f"=== request {n} {json.dumps(settings, sort_keys=True)}")
        for message in request["messages"]:
            out.extend([f"<{message['role']}>", *str(message["content"]).splitlines()])
    return out


def message_diff(lmms: Sequence[dict[str, Any]], ours: Sequence[dict[str, Any]]) -> str:
    """A unified diff (lmms-eval -> ours) of the requests' texts, one line of context."""
    return "\n".join(difflib.unified_diff(render(lmms), render(ours), "lmms-eval", "ours", lineterm="", n=1))


def distinct(values: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


def assert_same_messages(outcome: Outcome) -> None:
    """Per item, the distinct messages sent (in first-seen order) are identical on both sides."""
    keys = sorted(set(outcome.lmms_calls) | set(outcome.ours_calls))
    problems = []
    for key in keys:
        lmms = distinct([{"messages": b["messages"]} for b in outcome.lmms_calls.get(key, [])])
        ours = distinct([{"messages": b["messages"]} for b in outcome.ours_calls.get(key, [])])
        if lmms != ours:
            problems.append(f"item {key}: {len(lmms)} distinct messages (lmms-eval) vs {len(ours)} (ours)\n"
                            + message_diff(lmms, ours))  # fmt: skip
    assert not problems, "judge messages differ:\n" + "\n\n".join(problems)


def call_settings(calls: Sequence[Body]) -> list[tuple[Any, ...]]:
    return [(b.get("temperature"), b.get("max_tokens")) for b in calls]


def assert_same_calls(outcome: Outcome) -> None:
    """Per item, the same requests in the same order (temperature and max_tokens of each); one model."""
    keys = sorted(set(outcome.lmms_calls) | set(outcome.ours_calls))
    lmms = {k: call_settings(outcome.lmms_calls.get(k, [])) for k in keys}
    ours = {k: call_settings(outcome.ours_calls.get(k, [])) for k in keys}
    problems = [f"item {k}: lmms-eval {len(lmms[k])} calls {lmms[k]} vs ours {len(ours[k])} calls {ours[k]}"
                for k in keys if lmms[k] != ours[k]]  # fmt: skip
    assert not problems, "judge requests (temperature, max_tokens) differ:\n" + "\n".join(problems)
    models = [
        {b.get("model") for calls in side.values() for b in calls} for side in (outcome.lmms_calls, outcome.ours_calls)
    ]
    assert models[0] == models[1] == {JUDGE_MODEL}


def assert_same_scores(expected: dict[str, Any], got: dict[str, Any], what: str) -> None:
    problems = [f"{key}: lmms-eval {expected[key]!r} vs ours {got.get(key)!r}" for key in expected
                if got.get(key) != pytest.approx(expected[key], abs=1e-9)]  # fmt: skip
    assert not problems, f"{what} differ:\n" + "\n".join(problems)


# ----------------------------------------------------------------------------------------------
# MM-Vet


def mmvet_instruction() -> str:
    """The official grader's instruction (realdata), else lmms-eval's copy with the official header
    line put back (our loader derives lmms-eval's variant from the official text)."""
    official = PROMPTS / "mmvet_judge_prompt.txt"
    if official.is_file():
        return official.read_text(encoding="utf-8")
    tree = ast.parse((lmms_tasks_dir() / "mmvet/utils.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "MM_VET_PROMPT" for t in node.targets):
            return str(ast.literal_eval(node.value)).replace("\ngpt_query_prompt | ", "\n\nQuestion | ", 1)
    raise AssertionError("MM_VET_PROMPT not found in lmms-eval's mmvet/utils.py")


# (question, ground truth, capabilities, answer, scripted replies)
MMVET_ITEMS: list[tuple[str, str, list[str], str, tuple[str, ...]]] = [
    ("What number is painted on the red bus?", "42", ["ocr"], "The number is 42.", ()),
    ("Which animals sit on the bench?", "cat<AND>dog", ["rec"], "<think>I see fur.</think> A cat and a dog.", ()),
    ("What does the road sign say?", "stop<OR>halt", ["ocr", "rec"], "</think> It says STOP.", ()),
    ("How much do the two drinks cost together?", "$12<OR>12", ["ocr", "math"], "  \n $12 in total \n\n", ()),
    ("What colour is the umbrella?", "red", ["rec"], "Red!!! (definitely... 100%)", ()),
    ("Where is the lamp relative to the sofa?", "left", ["rec", "spat"],
     "<analysis>check the layout</analysis>\nTo the left | by the wall", ()),
    # an empty grade is asked again (lmms-eval's patience), then read
    ("Why is this comic strip funny?", "the cat ignores the alarm", ["rec", "know", "gen"],
     "The cat keeps sleeping.", ("", "0.5")),
    # not a number: the temperature rises by 0.5 with a call whose reply is never read, then it is asked again
    ("What time does the clock show?", "10:10", ["rec", "ocr"], "It shows ten past ten.", ("Correct.", "0.9", "0.6")),
    # out of [0, 1] twice: asked again at the same temperature
    ("How many apples are on the plate?", "3<OR>three", ["rec", "math"], "Three apples.", ("1.5", "-0.2", "0.8")),
    # always empty: 0.0 after three calls
    ("What brand is the laptop?", "Apple", ["ocr", "know"], "It is a Dell.", ("",)),
    # never a number: 0.0 once the temperature reaches 2
    ("Which city skyline is this?", "Paris", ["rec", "know"], "Paris, France.", ("n/a",)),
    ("What is written on the mug?", "BEST DAD", ["ocr"], "BEST DAD", ("0.7 because the text matches",)),
]  # fmt: skip

# lmms-eval asks an out-of-range grade again until it is in range; ours stops after the limit
MMVET_CAP_ITEM = ("How tall is the tower in metres?", "300", ["know"], "About 300 m.",
                  ("7",) * (LMMS_SAME_TEMPERATURE_LIMIT + 2) + ("0.4",))  # fmt: skip
MMVET_CAP_NEIGHBOUR = ("What colour is the kite?", "blue", ["rec"], "A blue kite.", ("1.0",))


def mmvet_case(name: str, items: Sequence[tuple[str, str, list[str], str, tuple[str, ...]]], root: Path) -> Case:
    ids = [f"v1_{i}" for i in range(len(items))]
    data = {qid: {"imagename": f"{qid}.png", "question": q, "answer": a, "capability": caps, "imagesource": "synthetic"}
            for qid, (q, a, caps, _, _) in zip(ids, items)}  # fmt: skip
    (root / "mm-vet").mkdir(parents=True)
    (root / "mm-vet/mm-vet.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    (root / "mm-vet/mmvet_judge_prompt.txt").write_text(mmvet_instruction(), encoding="utf-8")
    docs = [{"question_id": qid, "image": None, "question": q, "answer": a, "capability": ",".join(caps),
             "image_source": "synthetic"} for qid, (q, a, caps, _, _) in zip(ids, items)]  # fmt: skip
    return Case(
        name=name, task="mmvet", task_yaml="mmvet/mmvet.yaml",
        items=[Item(qid, f"\n{q} | ", replies) for qid, (q, _, _, _, replies) in zip(ids, items)],
        docs=docs, responses=[r for _, _, _, r, _ in items], root=root,
        answers=[{"question_id": qid, "text": r} for qid, (_, _, _, r, _) in zip(ids, items)],
    )  # fmt: skip


def mmvet_lmms_scores(outcome: Outcome) -> dict[str, float]:
    return {
        doc["question_id"]: per["gpt_eval_score"]["score"]
        for doc, per in zip(outcome.case.docs, outcome.lmms["per_doc"])
    }


def mmvet_our_scores(outcome: Outcome) -> dict[str, float | None]:
    return {doc["question_id"]: outcome.samples[doc["question_id"]]["score"] for doc in outcome.case.docs}


# ----------------------------------------------------------------------------------------------
# LLaVA-Bench-in-the-Wild

# image id -> caption (a string; lmms-lab's copy keeps it as one text)
LLAVA_CAPTIONS = {
    "001": "A red double-decker bus on a city street.\nPeople wait at the stop.",
    "002": "Two cats sleep on a grey sofa.",
    "003": "A wooden sign on a shop door reads 'Open'.",
    "004": "A bowl of fruit: three bananas and an apple.",
}
# (question id, image id, category, question, reference answer, answer, scripted review)
LLAVA_ITEMS: list[tuple[int, str, str, str, str, str, tuple[str, ...]]] = [
    (0, "001", "conv", "What colour is the bus?", "The bus is red.", "It is red.", ()),
    (1, "001", "detail", "Describe the street scene in detail.", "A red double-decker bus drives past a stop.",
     "<think>look first</think>\nA red bus passes a stop where people wait.", ()),
    (2, "001", "complex", "Why might the people be waiting?", "They are waiting for the bus.",
     "  They are likely waiting to board the bus.  \n", ()),
    # the first two numbers of the first line: (1, 9)
    (3, "002", "conv", "How many cats are on the sofa?", "There are two cats.", "Two!",
     ("Assistant 1: 9\nAssistant 2: 7",)),
    (4, "002", "detail", "Describe the sofa scene.", "Two cats sleep on a grey sofa.", "Cats on a sofa.",
     ("I would rate them 8 and 4; the second is brief.",)),
    # no numbers, one number, an empty review: (-1, -1)
    (5, "002", "complex", "What might the owner do next?", "Feed the cats or let them sleep.",
     "</think> Feed the cats.", ("The first answer is better.",)),
    (6, "003", "conv", "What is written on the sign?", "It says Open.", "Open", ("Score: 7",)),
    (7, "003", "complex", "Is the shop likely open now?", "Yes, the sign says it is open.", "Yes, the sign says so.",
     ("",)),
    # the review is stripped before its first line is read
    (8, "003", "detail", "Describe the shop sign.", "A wooden sign reading Open.", "A sign.",
     ("  \n 7, 5\nBoth fine.",)),
]  # fmt: skip
# a review whose calls fail in transport, next to one that succeeds
LLAVA_FAIL_ITEMS: list[tuple[int, str, str, str, str, str, tuple[str, ...]]] = [
    (0, "004", "conv", "What fruit is in the bowl?", "Bananas and an apple.", "Bananas and an apple.", ()),
    (1, "004", "conv", "How many bananas are there?", "There are three bananas.", "Three.", ()),
]


def llava_rules() -> str:
    official = PROMPTS / "llava_bench_rule.json"
    return (official if official.is_file() else lmms_tasks_dir() / "llava-in-the-wild/rule.json").read_text("utf-8")


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def llava_case(
    name: str, items: Sequence[tuple[int, str, str, str, str, str, tuple[str, ...]]], root: Path,
    drop: Sequence[int] = (), extra_args: tuple[str, ...] = (),
) -> Case:  # fmt: skip
    folder = root / "llava-bench-in-the-wild"
    write_jsonl(folder / "questions.jsonl",
                [{"image": f"{img}.jpg", "text": q, "category": cat, "question_id": qid}
                 for qid, img, cat, q, _, _, _ in items])  # fmt: skip
    images = sorted({img for _, img, *_ in items})
    write_jsonl(
        folder / "context.jsonl", [{"id": i, "image": f"{i}.jpg", "caption": LLAVA_CAPTIONS[i]} for i in images]
    )
    write_jsonl(folder / "answers_gpt4.jsonl",
                [{"question_id": qid, "prompt": q, "text": ref} for qid, _, _, q, ref, _, _ in items])  # fmt: skip
    (folder / "rule.json").write_text(llava_rules(), encoding="utf-8")
    docs = [{"question_id": qid, "question": q, "image": None, "caption": LLAVA_CAPTIONS[img], "gpt_answer": ref,
             "category": cat, "image_id": img} for qid, img, cat, q, ref, _, _ in items]  # fmt: skip
    return Case(
        name=name, task="llava_bench", task_yaml="llava-in-the-wild/llava-in-the-wild.yaml",
        items=[Item(str(qid), f"[Question]\n{q}\n\n", replies, qid in drop) for qid, _, _, q, _, _, replies in items],
        docs=docs, responses=[a for *_, a, _ in items], root=root,
        answers=[{"question_id": qid, "prompt": q, "text": a} for qid, _, _, q, _, a, _ in items],
        extra_args=extra_args,
    )  # fmt: skip


LLAVA_METRICS = {"gpt_eval_llava_all": "relative", "gpt_eval_llava_conv": "relative_conv",
                 "gpt_eval_llava_detail": "relative_detail", "gpt_eval_llava_complex": "relative_complex"}  # fmt: skip


def llava_lmms_pairs(outcome: Outcome) -> dict[str, list[float]]:
    return {str(doc["question_id"]): [float(x) for x in per["gpt_eval_llava_all"]["scores"]]
            for doc, per in zip(outcome.case.docs, outcome.lmms["per_doc"])}  # fmt: skip


def llava_our_pairs(outcome: Outcome) -> dict[str, Any]:
    """Our one review run's pair per question (None: no review)."""
    out: dict[str, Any] = {}
    for doc in outcome.case.docs:
        parsed = outcome.samples[str(doc["question_id"])]["parsed"]
        out[str(doc["question_id"])] = None if parsed is None or parsed[0] is None else [float(x) for x in parsed[0]]
    return out


# ----------------------------------------------------------------------------------------------
# MMBench (dev, en) with the choice extractor


@dataclass(frozen=True)
class Question:
    """One CircularEval group: pass k shows the options rotated left by k places."""

    base: int
    question: str
    options: tuple[str, ...]
    answer: int  # index into options
    hint: str | None
    l2: str
    answers: tuple[str, ...]  # the model's answer in each pass
    marks: tuple[str | None, ...]  # per pass: a piece of the answer that marks its extractor prompt
    replies: tuple[tuple[str, ...], ...] = ()  # per pass: scripted extractor replies (empty: hash_reply)

    def rows(self) -> Iterator[tuple[int, tuple[str, ...], str]]:
        """(index, options, answer letter) of each pass."""
        n = len(self.options)
        for k in range(len(self.answers)):
            yield k * 1_000_000 + self.base, self.options[k:] + self.options[:k], "ABCD"[(self.answer - k) % n]


COARSE, INSTANCE, LOGIC = "coarse_perception", "finegrained_perception (instance-level)", "logic_reasoning"
MMB_QUESTIONS = [
    Question(1, "Which animal is on the mat", ("cat", "dog", "bird", "fish"), 0, None, COARSE,
             ("A", "The answer is D."), (None, None)),
    # a wrong letter in the first pass decides the group: no judge
    Question(2, "What colour is the car", ("red", "blue", "green", "yellow"), 0, "Look at the street.", COARSE,
             ("B", "D"), (None, None)),
    # an unreadable pass, but the other pass is wrong: the judge is never asked
    Question(3, "What is the man holding", ("umbrella", "phone", "book", "cup"), 0, None, INSTANCE,
             ("Something to keep the rain off.", "C"), ("keep the rain off", None)),
    # extractor replies without a letter, then with one
    Question(4, "Which season is shown", ("winter", "summer", "spring", "autumn"), 0, None, COARSE,
             ("  It looks cold and snowy outside.\n", "Cold weather, the last one listed."),
             ("cold and snowy", "the last one listed"), (("I am not sure.", "A"), ("Maybe the second or third.", "D"))),
    # never a letter: a random letter (seeded) after three tries
    Question(5, "What is the weather like", ("sunny", "rainy", "foggy", "windy"), 1, None, INSTANCE,
             ("Hard to say from this angle.", "A"), ("from this angle", None), (("No idea.",), ())),
    # always an empty reply: lmms-eval's get_chat_response asks each try again (patience 5)
    Question(6, "Which room is this", ("kitchen", "bedroom", "bathroom", "garage"), 2, None, COARSE,
             ("Impossible to tell.", "B"), ("Impossible to tell", None), (("",), ())),
    # reasoning tags: lmms-eval reads "cat" (B); with the tags kept both option texts appear
    Question(7, "Which pet is on the sofa", ("dog", "cat", "rabbit", "hamster"), 1, None, INSTANCE,
             ("<think>It is not the dog.</think> cat", "</think> A"), ("not the dog", None)),
    Question(8, "What shape is the sign", ("circle", "square", "triangle", "octagon"), 3, None, INSTANCE,
             ("\n  D \n", "  C.  "), (None, None)),
    # "A" as a quantifier: the letter rule is skipped, the option text decides
    Question(9, "What animal is shown", ("cat", "horse", "cow", "sheep"), 0, None, COARSE,
             ("A cat sits on the mat", "D"), ("A cat sits", None)),
    # three options (D missing); the third pass goes to the judge
    Question(10, "Is the door open", ("yes", "no", "partly"), 1, "A door in a hallway.", LOGIC,
             ("no", "It is not open, no.", "Closed."), (None, "It is not open", "Closed.")),
    Question(11, "How many people are in the photo", ("one", "two", "three", "four"), 2, None, INSTANCE,
             ("(C)", "B)"), (None, None)),
    # two option texts in the answer: the judge decides
    Question(12, "What is on the table", ("a vase", "a lamp", "a clock", "a book"), 0, None, LOGIC,
             ("I think a vase, or maybe a lamp.", "D"), ("or maybe a lamp", None)),
    # three empty replies, then a letter: lmms-eval's first try re-asks until the letter comes
    Question(13, "What is the boy eating", ("apple", "bread", "cake", "soup"), 1, None, LOGIC,
             ("Something sweet from the bakery.", "A"), ("from the bakery", None), (("", "", "", "B"), ())),
]  # fmt: skip
MMB_COLUMNS = ("index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
               "l2-category", "comment", "split")  # fmt: skip


def tiny_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (30, 120, 200)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def mmbench_case(root: Path) -> Case:
    image = tiny_png()
    lines = ["\t".join(MMB_COLUMNS)]
    docs: list[dict[str, Any]] = []
    items: list[Item] = []
    responses: list[str] = []
    for q in MMB_QUESTIONS:
        for k, (index, options, letter) in enumerate(q.rows()):
            cells = dict(zip("ABCD", options))
            row = {"index": index, "question": q.question, "hint": q.hint, **{c: cells.get(c) for c in "ABCD"},
                   "answer": letter, "category": f"group_{q.base}", "source": "synthetic", "L2-category": q.l2,
                   "comment": None, "split": "dev"}  # fmt: skip
            docs.append({**row, "image": None})
            tsv = {**row, "image": image, "l2-category": q.l2}
            lines.append("\t".join("" if tsv[c] is None else str(tsv[c]) for c in MMB_COLUMNS))
            replies = q.replies[k] if k < len(q.replies) else ()
            items.append(Item(str(index), q.marks[k], replies))
            responses.append(q.answers[k])
    (root / "mmbench").mkdir(parents=True)
    (root / "mmbench/mmbench_dev_20230712.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Case(
        name="mmbench", task="mmbench", task_yaml="mmbench/mmbench_en_dev.yaml", items=items, docs=docs,
        responses=responses, root=root,
        answers=[{"question_id": d["index"], "text": r} for d, r in zip(docs, responses)],
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Fixtures: one lmms-eval process per group of cases


@pytest.fixture(scope="module")
def graded(judge: Judge, lmms_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """The synthetic MM-Vet and LLaVA-Bench cases, and the real ones when the realdata folder is there."""
    base = tmp_path_factory.mktemp("judged")
    cases = [
        mmvet_case("mmvet", MMVET_ITEMS, base / "mmvet-root"),
        # with a readable item beside it: a task none of whose grades could be read has no score
        mmvet_case("mmvet_cap", [MMVET_CAP_ITEM, MMVET_CAP_NEIGHBOUR], base / "mmvet-cap-root"),
        llava_case("llava_bench", LLAVA_ITEMS, base / "llava-root"),
        llava_case("llava_fail", LLAVA_FAIL_ITEMS, base / "llava-fail-root", drop=[1],
                   extra_args=("--judge-retries", "0")),
        *real_cases(base / "real"),
    ]  # fmt: skip
    return grade_both(cases, judge, lmms_python, lmms_env(judge.server.url), base / "ours")


@pytest.fixture(scope="module")
def mmbench(judge: Judge, lmms_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    base = tmp_path_factory.mktemp("judged-mmbench")
    env = lmms_env(judge.server.url + "/chat/completions")
    return grade_both([mmbench_case(base / "root")], judge, lmms_python, env, base / "ours")["mmbench"]


# ----------------------------------------------------------------------------------------------
# MM-Vet tests


def test_mmvet_judge_messages_are_identical(graded: dict[str, Outcome]) -> None:
    outcome = graded["mmvet"]
    assert set(outcome.lmms_calls) == {item.id for item in outcome.case.items}
    assert_same_messages(outcome)


def test_mmvet_reasks_are_the_same_calls(graded: dict[str, Outcome]) -> None:
    """Empty, unreadable and out-of-range grades are asked again the same number of times, at the same
    temperatures, on both sides (each re-ask a real request)."""
    outcome = graded["mmvet"]
    assert len(outcome.lmms_calls["v1_10"]) > 3  # the never-a-number item climbs the temperatures
    assert_same_calls(outcome)


def test_mmvet_scores_and_total_match(graded: dict[str, Outcome]) -> None:
    outcome = graded["mmvet"]
    assert_same_scores(mmvet_lmms_scores(outcome), mmvet_our_scores(outcome), "per-sample MM-Vet scores")
    assert outcome.ours["scores"]["total"] == pytest.approx(outcome.lmms["metrics"]["gpt_eval_score"], abs=1e-9)


def test_mmvet_out_of_range_limit_is_a_documented_difference(graded: dict[str, Outcome]) -> None:
    """lmms-eval re-asks a grade out of [0, 1] until one is in range; ours stops after the limit with 0.0."""
    outcome = graded["mmvet_cap"]
    assert_same_messages(outcome)
    assert len(outcome.lmms_calls["v1_0"]) == LMMS_SAME_TEMPERATURE_LIMIT + 3
    assert mmvet_lmms_scores(outcome)["v1_0"] == 0.4
    assert len(outcome.ours_calls["v1_0"]) == LMMS_SAME_TEMPERATURE_LIMIT
    assert mmvet_our_scores(outcome)["v1_0"] == 0.0
    assert outcome.samples["v1_0"]["parse_failed"] is True


# ----------------------------------------------------------------------------------------------
# LLaVA-Bench tests


def test_llava_bench_judge_requests_are_identical(graded: dict[str, Outcome]) -> None:
    outcome = graded["llava_bench"]
    assert set(outcome.lmms_calls) == {item.id for item in outcome.case.items}
    assert_same_messages(outcome)
    assert_same_calls(outcome)


def test_llava_bench_pairs_and_relative_scores_match(graded: dict[str, Outcome]) -> None:
    outcome = graded["llava_bench"]
    assert_same_scores(llava_lmms_pairs(outcome), llava_our_pairs(outcome), "per-sample review pairs")
    metrics = outcome.lmms["metrics"]
    expected = {ours: metrics[name] for name, ours in LLAVA_METRICS.items()}
    assert_same_scores(expected, outcome.ours["scores"], "relative scores")


def test_llava_bench_transport_failure_is_a_documented_difference(graded: dict[str, Outcome]) -> None:
    """A review whose call fails: lmms-eval averages in (-1, -1), ours leaves it out and counts it."""
    outcome = graded["llava_fail"]
    assert_same_messages(outcome)
    lmms, ours = llava_lmms_pairs(outcome), llava_our_pairs(outcome)
    assert lmms["1"] == [-1.0, -1.0] and ours["1"] is None
    assert ours["0"] == lmms["0"]
    assert outcome.ours["scores"]["judge_failures"] == 1.0
    assert outcome.ours["metrics"]["relative"]["n"] == 1
    assert outcome.ours["scores"]["relative"] != outcome.lmms["metrics"]["gpt_eval_llava_all"]


# ----------------------------------------------------------------------------------------------
# MMBench tests


def test_mmbench_extractor_messages_are_identical(mmbench: Outcome) -> None:
    assert UNOWNED not in mmbench.lmms_calls
    assert_same_messages(mmbench)


def test_mmbench_extractor_calls_match(mmbench: Outcome) -> None:
    """The same passes reach the extractor, with the same number of calls (empty replies included)."""
    assert_same_calls(mmbench)


def test_mmbench_accuracy_and_groups_match(mmbench: Outcome) -> None:
    (details,) = [v for k, v in mmbench.lmms["files"].items() if k.endswith("mmbench_en_dev_results.json")]
    expected = {f"group_{q.base}": details["category_acc"][f"group_{q.base}"] for q in MMB_QUESTIONS}
    ours = {f"group_{q.base}": mmbench.samples[str(q.base)]["score"] for q in MMB_QUESTIONS}
    assert_same_scores(expected, ours, "CircularEval groups (right = 1)")
    l2 = {name: 100 * acc for name, acc in details["l2_category_acc"].items()}
    assert_same_scores(l2, {k: m["value"] for k, m in mmbench.ours["breakdowns"]["l2_category"].items()}, "L2 accuracy")
    assert mmbench.ours["scores"]["circular"] == pytest.approx(mmbench.lmms["metrics"]["gpt_eval_score"], abs=1e-9)


# ----------------------------------------------------------------------------------------------
# Real data: LLaVA-1.5-13B's published answers (skipped without the realdata folder)

REAL_MODEL = "llava-v1.5-13b"


def real_cases(base: Path) -> list[Case]:
    """LLaVA-1.5-13B's MM-Vet and LLaVA-Bench answers on the real files; none without them."""
    mmvet_json, bench = REALDATA / "mmvet/mm-vet.json", REALDATA / "llava_bench_wild"
    needed = [mmvet_json, REALDATA / f"mmvet/answers/{REAL_MODEL}.jsonl", bench / "questions.jsonl",
              bench / "context.jsonl", bench / "answers_gpt4.jsonl", bench / f"answers/{REAL_MODEL}.jsonl"]  # fmt: skip
    if not all(p.exists() for p in needed):
        return []
    data = json.loads(mmvet_json.read_text(encoding="utf-8"))
    answers = {f"v1_{r['question_id']}": r["text"] for r in read_jsonl(REALDATA / f"mmvet/answers/{REAL_MODEL}.jsonl")}
    mmvet_root = base / "mmvet-root"
    (mmvet_root / "mm-vet").mkdir(parents=True)
    (mmvet_root / "mm-vet/mm-vet.json").symlink_to(mmvet_json)
    (mmvet_root / "mm-vet/mmvet_judge_prompt.txt").write_text(mmvet_instruction(), encoding="utf-8")
    mmvet = Case(
        name="real_mmvet", task="mmvet", task_yaml="mmvet/mmvet.yaml", items=[], kind=mmvet_instruction()[:60],
        docs=[{"question_id": qid, "image": None, "question": item["question"], "answer": item["answer"],
               "capability": ",".join(item["capability"])} for qid, item in data.items()],
        responses=[answers[qid] for qid in data], root=mmvet_root,
        answers=[{"question_id": qid, "text": answers[qid]} for qid in data],
    )  # fmt: skip
    questions = read_jsonl(bench / "questions.jsonl")
    references = read_jsonl(bench / "answers_gpt4.jsonl")
    model = read_jsonl(bench / f"answers/{REAL_MODEL}.jsonl")
    contexts = {c["image"]: c for c in read_jsonl(bench / "context.jsonl")}
    bench_root = base / "llava-root"
    folder = bench_root / "llava-bench-in-the-wild"
    folder.mkdir(parents=True)
    for name in ("questions.jsonl", "context.jsonl", "answers_gpt4.jsonl"):
        (folder / name).symlink_to(bench / name)
    (folder / "rule.json").write_text(llava_rules(), encoding="utf-8")
    llava = Case(
        name="real_llava_bench", task="llava_bench", task_yaml="llava-in-the-wild/llava-in-the-wild.yaml", items=[],
        docs=[{"question_id": q["question_id"], "question": q["text"], "image": None,
               "caption": contexts[q["image"]]["caption"], "gpt_answer": ref["text"], "category": q["category"],
               "image_id": contexts[q["image"]]["id"]} for q, ref in zip(questions, references)],
        responses=[a["text"] for a in model], root=bench_root, answers=list(model), kind="[Context]\n",
    )  # fmt: skip
    return [mmvet, llava]


def real(graded: dict[str, Outcome], name: str) -> Outcome:
    if name not in graded:
        pytest.skip(f"real data not found under {REALDATA} (set HARNESS_REALDATA)")
    return graded[name]


def canonical(bodies: Sequence[Body]) -> Counter[str]:
    return Counter(json.dumps(wire(b), sort_keys=True, ensure_ascii=False) for b in bodies)


def assert_same_requests(outcome: Outcome, expected_count: int) -> None:
    """The same requests as multisets (real data: items are not told apart)."""
    lmms, ours = canonical(outcome.lmms_calls["all"]), canonical(outcome.ours_calls["all"])
    assert sum(lmms.values()) == len(outcome.case.docs) == expected_count
    only_lmms = [json.loads(k) for k in sorted((lmms - ours).elements())]
    only_ours = [json.loads(k) for k in sorted((ours - lmms).elements())]
    assert lmms == ours, "requests differ:\n" + message_diff(only_lmms, only_ours)


def test_real_mmvet_matches(graded: dict[str, Outcome]) -> None:
    outcome = real(graded, "real_mmvet")
    assert_same_requests(outcome, 218)
    assert_same_scores(mmvet_lmms_scores(outcome), mmvet_our_scores(outcome), "per-sample MM-Vet scores")
    assert outcome.ours["scores"]["total"] == pytest.approx(outcome.lmms["metrics"]["gpt_eval_score"], abs=1e-9)


def test_real_llava_bench_matches(graded: dict[str, Outcome]) -> None:
    outcome = real(graded, "real_llava_bench")
    assert_same_requests(outcome, 60)
    assert_same_scores(llava_lmms_pairs(outcome), llava_our_pairs(outcome), "per-sample review pairs")
    expected = {ours_name: outcome.lmms["metrics"][name] for name, ours_name in LLAVA_METRICS.items()}
    assert_same_scores(expected, outcome.ours["scores"], "relative scores")
