"""MMBench CircularEval: VLMEvalKit's ``multiple_choice.py`` (early 2024) and lmms-eval's variant.

VLMEvalKit (open-compass/VLMEvalKit @ 996dc62), the official evaluation behind the MMBench server:

1. Rows are grouped by ``index % 1_000_000``; a group exists for each base row (index below
   1_000_000) and holds every row of that question, in index order.
2. Each pass (row) is read with ``can_infer`` (``tasks.common.choice``). A pass that yields a
   letter other than its own answer (``Z`` included) makes the group wrong at once; a group whose
   passes all yield their answers is right.
3. The rest have passes with no match. Without a judge (``exact_matching``, or no API key in the
   2024 code) such a group is wrong. With a judge, each unmatched pass in order gets the choice
   extractor prompt (``choice_extractor_prompt.txt``; temperature 0, up to 3 tries, each reply
   read with ``can_infer``, a failed call counting as a try); after 3 failures a letter is drawn
   at random among the options and ``Z`` from one ``random.Random(2680)`` stream (VLMEvalKit seeds
   the module-level generator with 2680; it draws in thread completion order, here in index
   order). The first pass resolved to another letter makes the group wrong.
4. Overall = the percent of right groups; the same per L2 category (``l2-category``) and per L3
   category (``category``) of the base row.

Predictions reach VLMEvalKit through an xlsx file read back by pandas, so a missing prediction or
one that pandas reads as NA (``""``, ``"None"``, ``"NA"``...) is the text ``"nan"``.

lmms-eval (``mmbench_en_dev``): the same grouping and short-circuits with its own matcher
(``lmms_can_infer``: letters A-E, no punctuation stripping, no ``Z``), the stripped generation as
prediction, its own extractor prompt (``lmms_eval_choice_extractor_prompt.txt``: "output E"),
max_tokens 256, and a random fallback over ``ABCDE`` (``randint`` with seed 2680). Without a
judge lmms-eval would still call its (unreachable) API and fall back to random letters; here an
unmatched pass is then wrong, as VLMEvalKit's exact matching does.

Also reported (not a headline): ``vanilla``, the percent of base rows answered right, read with
the same extraction (a base row the judge was not asked about counts by the heuristics alone).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.judging.contract import Judge
from harness.results.records import Record, detail, mean_of, scored
from harness.stats.analytic import mean_metric
from harness.stats.bootstrap import Estimands
from harness.types import Metric, Response, Sample, SampleScore, TaskResult
from tasks.common.answers import count_responses
from tasks.common.choice import API_FAILURE, NONE_LETTER, can_infer, lmms_can_infer
from tasks.common.scoring import Header, task_result
from tasks.mmbench.tsv import PANDAS_NA, ROUND

PROMPT_DIR = Path(__file__).parent
RANDOM_SEED = 2680
CJK = re.compile("[\u4e00-\u9fff]")  # VLMEvalKit's cn_string: any CJK unified ideograph
JUDGE_TRIES = 3
# VLMEvalKit's abbreviations of the six L2 categories (as its report prints them).
L2_ABBREVIATIONS = {
    "coarse_perception": "CP",
    "finegrained_perception (instance-level)": "FP-S",
    "finegrained_perception (cross-instance)": "FP-C",
    "logic_reasoning": "LR",
    "relation_reasoning": "RR",
    "attribute_reasoning": "AR",
}


@cache
def load_prompt(name: str) -> str:
    """A judge prompt template shipped next to this module (``{question}``, ``{options}``, ``{prediction}``)."""
    return (PROMPT_DIR / name).read_text(encoding="utf-8").removesuffix("\n")


def xlsx_prediction(response: Response | None) -> str:
    """The prediction text VLMEvalKit reads back from the submission xlsx (``str()`` of pandas' value)."""
    if response is None or response.text in PANDAS_NA:
        return "nan"
    return response.text


def stripped_prediction(response: Response | None) -> str:
    """lmms-eval's prediction: the stripped generation (no answer: empty)."""
    return "" if response is None else response.text.strip()


@dataclass(frozen=True)
class Extractor:
    """How one protocol reads a pass: the heuristics, the judge prompt and reply, the random fallback."""

    name: str
    prediction: Callable[[Response | None], str]
    heuristic: Callable[[str, Mapping[str, object]], str | None]
    prompt_file: str
    judge_max_tokens: int
    fallback: Callable[[Mapping[str, str], random.Random], str]
    patience: int = 1  # calls per try while the reply is empty or the call fails (lmms-eval: 5), reply stripped
    # VLMEvalKit's build_prompt_cn: the template for questions with a CJK ideograph (None: never; a path
    # relative to this module's folder, or absolute)
    cn_prompt_file: str | None = None

    def judge_prompt(self, question: str, options: Sequence[tuple[str, str]], prediction: str) -> str:
        listing = "There are several options: \n" + "".join(f"{c}. {v}\n" for c, v in options)
        name = self.cn_prompt_file if self.cn_prompt_file and CJK.search(question) else self.prompt_file
        return load_prompt(name).format(question=question, options=listing, prediction=prediction)


def _vlmevalkit_fallback(choices: Mapping[str, str], rng: random.Random) -> str:
    return rng.choice([*choices, NONE_LETTER] if NONE_LETTER not in choices else [])


def _lmms_eval_fallback(choices: Mapping[str, str], rng: random.Random) -> str:
    return "ABCDE"[rng.randint(0, 4)]  # lmms-eval counts the A-D columns (always 4), adds E


EXTRACTORS = {
    "vlmevalkit": Extractor(
        "vlmevalkit", xlsx_prediction, can_infer, "choice_extractor_prompt.txt", 1024, _vlmevalkit_fallback
    ),
    "lmms-eval": Extractor(
        "lmms-eval",
        stripped_prediction,
        lmms_can_infer,
        "lmms_eval_choice_extractor_prompt.txt",
        256,
        _lmms_eval_fallback,
        patience=5,
    ),
}


@dataclass
class PassResult:
    """How one row was read: the letter, by which route, and the judge's replies."""

    sample: Sample
    prediction: str
    letter: str | None = None
    how: str = "not examined"  # heuristic | unmatched | judge | random | not examined
    replies: list[str] = field(default_factory=list)

    @property
    def answer(self) -> str:
        return str(self.sample.target)

    @property
    def index(self) -> int:
        return int(self.sample.metadata["index"])


@dataclass
class JudgeLog:
    calls: int = 0
    failures: int = 0
    random: int = 0
    models: set[str] = field(default_factory=set)


def _choices(sample: Sample, extractor: Extractor) -> dict[str, str]:
    choices = dict(sample.metadata["choices"])
    if extractor.name == "lmms-eval":
        choices = {c: v for c, v in choices.items() if c in "ABCD"}
    return choices


def _judge_options(sample: Sample, extractor: Extractor) -> list[tuple[str, str]]:
    choices = sample.metadata["choices"]
    if extractor.name == "vlmevalkit":
        return list(choices.items())
    out: list[tuple[str, str]] = []  # lmms-eval's extract_options: A-D up to the first missing one
    for letter in "ABCD":
        if letter not in choices:
            break
        out.append((letter, choices[letter]))
    return out


def ask_judge(
    p: PassResult, judge: Judge, extractor: Extractor, settings: Mapping[str, Any], rng: random.Random, log: JudgeLog
) -> None:
    """``extract_answer_from_item`` for an unmatched pass: up to 3 judge tries, then a random letter."""
    choices = _choices(p.sample, extractor)
    prompt = extractor.judge_prompt(
        str(p.sample.metadata["question"]), _judge_options(p.sample, extractor), p.prediction
    )
    max_tokens = int(settings.get("judge_max_tokens", extractor.judge_max_tokens))
    messages = [{"role": "user", "content": prompt}]
    calls = 0
    for _ in range(JUDGE_TRIES):
        # Every call is a fresh one (its index is the judge's attempt, so a caching judge never replays an
        # earlier one): one per try in VLMEvalKit; in lmms-eval an empty reply or a failed call is asked again
        # within the try (its get_chat_response patience) before the try counts as an API failure.
        for _ in range(extractor.patience):
            reply = judge.complete(messages, temperature=0.0, max_tokens=max_tokens, attempt=calls)
            calls += 1
            log.calls += 1
            if reply.model:
                log.models.add(reply.model)
            if extractor.patience == 1 or (reply.error is None and reply.text.strip()):
                break
        text = reply.text.strip() if extractor.patience > 1 else reply.text
        if reply.error is not None or API_FAILURE in text or (extractor.patience > 1 and not text):
            log.failures += 1
            p.replies.append(f"error: {reply.error or text or 'empty reply'}")
            continue
        p.replies.append(text)
        letter = extractor.heuristic(text, choices)
        if letter:
            p.letter, p.how = letter, "judge"
            return
    p.letter, p.how = extractor.fallback(choices, rng), "random"
    log.random += 1


def eval_group(
    passes: Sequence[PassResult],
    judge: Judge | None,
    extractor: Extractor,
    settings: Mapping[str, Any],
    rng: random.Random,
    log: JudgeLog,
) -> tuple[bool, str]:
    """One CircularEval group: (right, why)."""
    for p in passes:  # prefetch, in index order; the first wrong letter decides
        p.letter = extractor.heuristic(p.prediction, _choices(p.sample, extractor))
        p.how = "heuristic" if p.letter else "unmatched"
        if p.letter and p.letter != p.answer:
            return False, f"pass {p.index} read as {p.letter}, answer {p.answer}"
    if all(p.letter == p.answer for p in passes):
        return True, "every pass matched its answer"
    random_without_judge = settings.get("unmatched_without_judge", "wrong") == "random"
    if judge is None and not random_without_judge:
        return False, "a pass matched no option and no judge is configured (exact matching)"
    for p in passes:
        if p.letter:
            continue
        if judge is None:  # lmms-eval without a working judge: its tries fail, the seeded random letter decides
            p.letter, p.how = extractor.fallback(_choices(p.sample, extractor), rng), "random"
            log.random += 1
        else:
            ask_judge(p, judge, extractor, settings, rng, log)
        if p.letter != p.answer:
            return False, f"pass {p.index} resolved by the {p.how} to {p.letter}, answer {p.answer}"
    return True, "every pass matched its answer (judge consulted)"


def _percent_breakdown(values_by_key: Mapping[str, list[float]], describe: Callable[[str], str]) -> dict[str, Metric]:
    return {key: mean_metric(values_by_key[key], description=describe(key)) for key in sorted(values_by_key)}


def score_circular(
    samples: Sequence[Sample],
    responses: Mapping[str, Response],
    header: Header,
    scorer: str = "vlmevalkit",
    judge: Judge | None = None,
    settings: Mapping[str, Any] | None = None,
    extractors: Mapping[str, Extractor] | None = None,
) -> TaskResult:
    """CircularEval of the given samples (rows) under VLMEvalKit's or lmms-eval's reading (``extractors``:
    the readings by scorer name, :data:`EXTRACTORS` by default)."""
    extractors = EXTRACTORS if extractors is None else extractors
    if scorer not in extractors:
        raise HarnessError(f"{header[0]}: unknown scorer {scorer!r}; expected one of {', '.join(extractors)}")
    extractor = extractors[scorer]
    settings = settings or {}
    seed = int(settings.get("judge_seed", RANDOM_SEED))
    rng = random.Random(seed)
    log = JudgeLog()
    passes = {s.id: PassResult(s, extractor.prediction(responses.get(s.id))) for s in samples}
    members: dict[int, list[PassResult]] = {}
    for p in sorted(passes.values(), key=lambda p: p.index):
        members.setdefault(p.index % ROUND, []).append(p)
    bases = sorted(p.index for p in passes.values() if p.index < ROUND)
    base_set = set(bases)
    orphans = sum(len(ps) for group, ps in members.items() if group not in base_set)

    hits: dict[int, bool] = {}
    reasons: dict[int, str] = {}
    for base in bases:
        hits[base], reasons[base] = eval_group(members[base], judge, extractor, settings, rng, log)

    per_sample: list[SampleScore] = []
    values = [1.0 if hits[b] else 0.0 for b in bases]
    l2: dict[str, list[float]] = {}
    l3: dict[str, list[float]] = {}
    vanilla: list[float] = []
    for base in bases:
        base_pass = members[base][0]
        meta = base_pass.sample.metadata
        value = 1.0 if hits[base] else 0.0
        if meta.get("l2_category") is not None:
            l2.setdefault(meta["l2_category"], []).append(value)
        if meta.get("category") is not None:
            l3.setdefault(meta["category"], []).append(value)
        vanilla.append(1.0 if base_pass.letter == base_pass.answer else 0.0)
    for sample in samples:
        p = passes[sample.id]
        group = p.index % ROUND
        is_base = p.index < ROUND
        hit = hits.get(group)
        per_sample.append(
            SampleScore(
                sample_id=sample.id,
                parsed=p.letter,
                score=(1.0 if hit else 0.0) if is_base and hit is not None else None,
                correct=None if p.how == "not examined" else p.letter == p.answer,
                parse_failed=p.how != "not examined" and p.how != "heuristic",
                detail={
                    "group": group,
                    "pass": p.index // ROUND,
                    "answer": p.answer,
                    "read_by": p.how,
                    "group_correct": hit,
                    **({"group_reason": reasons[group]} if is_base and group in reasons else {}),
                    **({"judge_replies": p.replies} if p.replies else {}),
                },
            )
        )

    metrics = {
        "circular": mean_metric(values, description="CircularEval: percent of questions right in every pass"),
        "vanilla": mean_metric(vanilla, description="percent of base rows (index < 1e6) answered right"),
    }
    breakdowns = {
        "l2_category": _percent_breakdown(l2, lambda k: f"CircularEval, L2 {L2_ABBREVIATIONS.get(k, k)}"),
        "category": _percent_breakdown(l3, lambda k: f"CircularEval, L3 {k}"),
    }
    notes = _notes(passes.values(), hits, reasons, judge, log, orphans, extractor, seed)
    counts = count_responses(samples, responses)
    if counts.missing:
        notes.append(
            f"{counts.missing} of {len(samples)} rows have no answer (prediction {extractor.prediction(None)!r})"
        )
    no_truth = sum(1 for s in samples if s.target is None)
    if no_truth:
        notes.append(f"{no_truth} rows have no ground-truth answer in the TSV (a test-split file?): never right")
    return task_result(header, metrics, per_sample, counts, notes, breakdowns)


def _notes(
    passes: Any,
    hits: Mapping[int, bool],
    reasons: Mapping[int, str],
    judge: Judge | None,
    log: JudgeLog,
    orphans: int,
    extractor: Extractor,
    seed: int,
) -> list[str]:
    notes: list[str] = []
    unmatched = sum(1 for p in passes if p.how in ("unmatched", "judge", "random"))
    if unmatched:
        notes.append(f"{unmatched} passes matched no option by the {extractor.name} heuristics")
    if judge is None:
        undecided = sum(1 for g, hit in hits.items() if not hit and reasons[g].startswith("a pass matched no option"))
        if undecided:
            notes.append(
                f"{undecided} questions count as wrong only because a pass matched no option and no judge is "
                "configured (exact matching; the official run would ask the choice extractor)"
            )
    else:
        models = ", ".join(sorted(log.models)) or "unknown model"
        notes.append(
            f"choice extractor ({models}): {log.calls} calls, {log.failures} failed, "
            f"{log.random} passes given a random letter after {JUDGE_TRIES} tries (seed {seed})"
        )
    if orphans:
        notes.append(f"{orphans} rows belong to no base row among the scored ones and were not scored")
    return notes


# ---------------------------------------------------------------------------------------------
# Statistics


def estimands(records: Sequence[Record]) -> Estimands:
    """circular and vanilla as means over questions; a question's record (its base row) carries the score
    of its whole circular group, so resampling records resamples whole groups."""
    bases = scored(records)

    def group(r: Record) -> str:
        return str(detail(r, "group", r["id"]))

    vanilla = [{**r, "vanilla": 1.0 if r.get("correct") else 0.0} for r in bases]
    return Estimands({
        "circular": mean_of("circular", bases, group, "circular group"),
        "vanilla": mean_of("vanilla", vanilla, group, "circular group", value="vanilla"),
    })  # fmt: skip
