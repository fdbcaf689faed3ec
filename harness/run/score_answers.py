"""``harness score``: score an answers file without a model, exactly as a run would.

Accepted answers: a LLaVA answers JSONL (``question_id``, ``text``, optionally ``prompt``), a samples
log of ours (``samples/<task>.jsonl``), or a task-specific format (``Task.score_path``, e.g. MME's
eval_tool folder).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.adapter import ModelInfo
from harness.data.check import data_fingerprint, load_for, require_data, resolve_data_root
from harness.data.demo import is_demo_root
from harness.data.readers import iter_jsonl
from harness.errors import DataError, UsageError
from harness.judging.setup import (
    JudgeOptions,
    OpenAIJudge,
    build_judge,
    judge_cache_for,
    judge_requirement,
    usage_since,
)
from harness.protocol import DEFAULT_PROTOCOL, Protocol, load_protocol
from harness.registry import get_task
from harness.results.outcome import scoring_failure
from harness.results.records import statistics_records
from harness.results.schema import (
    RESULTS_FILE,
    SAMPLES_DIR,
    DataInfo,
    JudgeInfo,
    JudgeUsage,
    RunSpec,
    new_run_id,
    sample_records,
)
from harness.run.answer_columns import AnswerColumns, llava_columns, read_ahead
from harness.stats.intervals import add_intervals
from harness.task import Task
from harness.types import Response, Sample, TaskResult


@dataclass
class ScoreOptions:
    task: str
    answers: str
    data_root: str | None = None
    output_dir: str | None = None
    store: str | None = None
    protocol: str = DEFAULT_PROTOCOL
    argv: list[str] = field(default_factory=list)
    judge: JudgeOptions = field(default_factory=JudgeOptions)


@dataclass
class Scored:
    result: TaskResult
    samples: list[Sample]
    responses: dict[str, Response]
    data_root: Path | None
    model_label: str
    judge: JudgeInfo | None = None
    judge_usage: JudgeUsage | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)  # the samples-log lines the intervals came from

    def failure(self) -> str | None:
        """Why the answers gave no headline number (None when they did); see ``scoring_failure``."""
        answered = None
        if self.samples:  # a task-specific format (MME's folder) brings no samples of its own
            answered = sum(1 for s in self.samples if (r := self.responses.get(s.id)) is not None and r.error is None)
        return scoring_failure(self.result, self.judge_usage, answered)


def _read_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    records = list(iter_jsonl(path))
    if not records:
        raise DataError(f"{path}: no answers in file")
    return records


@dataclass
class AnswerFile:
    """An answers file joined to samples: responses by sample id (file order), and what did not join."""

    responses: dict[str, Response]
    model_label: str
    notes: list[str] = field(default_factory=list)


def _join_notes(path: Path, keys: list[tuple[str, str]], used: set[int]) -> list[str]:
    """Lines that gave no answer are counted, never silent: a line replaced by a later one with the same id
    and prompt (the later wins, as the official converters' dicts do), and a line that matches no question
    of the task. ``keys`` are the lines' (id, prompt) and ``used`` the indices of the lines that answered."""
    used_keys = {keys[i] for i in used}
    unused = [i for i in range(len(keys)) if i not in used]
    replaced = sum(1 for i in unused if keys[i] in used_keys)
    notes = []
    if replaced:
        notes.append(f"{path.name}: {replaced} duplicate answer line(s); the later line was used")
    if len(unused) > replaced:
        notes.append(f"{path.name}: {len(unused) - replaced} answer line(s) match no question of the task; ignored")
    return notes


def _default_join(task: Task) -> bool:
    """Whether the task joins answers lines by question id alone (it does not override ``match_answers``)."""
    return type(task).match_answers is Task.match_answers


def _lines(path: Path, columns: AnswerColumns) -> list[dict[str, Any]]:
    """The answers file's lines (texts that are no string stood in for): kept, or read again (a child kept none)."""
    return columns.lines if columns.lines is not None else llava_columns(path, _read_records(path)).lines or []


def _matched_lines(task: Task, samples: list[Sample], path: Path, columns: AnswerColumns) -> dict[str, int]:
    """Sample id -> index of the line the task's join keeps for it: the default join's own indices, or a task's
    ``match_answers`` on the lines with each one's index as its text (every one passes the text through)."""
    if _default_join(task):
        return task.answer_positions(samples, columns.question_ids)
    marked = [{**line, "text": f"\x00{i}"} for i, line in enumerate(_lines(path, columns))]
    return {sid: int(text[1:]) for sid, text in task.match_answers(samples, marked).items()}


def read_answers(path: Path, task: Task, samples: list[Sample], columns: AnswerColumns | None = None) -> AnswerFile:
    """Responses keyed by sample id, in the answers file's order, a label for the model, and notes.

    ``columns``: the file's LLaVA answers columns when they were read already (``read_ahead``)."""
    if columns is None:
        records = _read_records(path)
        if "question_id" not in records[0][1]:
            return _samples_log_answers(path, samples, records)
        columns = llava_columns(path, records)
    matched = _matched_lines(task, samples, path, columns)
    label = str(columns.first.get("model_id") or path.stem)
    texts, bad = columns.texts, columns.bad
    responses = {sid: Response(error=bad[text]) if (text := texts[i]) in bad else Response(text=text)
                 for sid, i in matched.items()}  # fmt: skip
    used = set(matched.values())
    if len(used) == len(texts):  # every line answered a question: nothing to note
        return AnswerFile(responses, label)
    keys = [(str(line["question_id"]), str(line.get("prompt", ""))) for line in _lines(path, columns)]
    return AnswerFile(responses, label, _join_notes(path, keys, used))


def _samples_log_answers(path: Path, samples: list[Sample], records: list[tuple[int, dict[str, Any]]]) -> AnswerFile:
    """The responses of a samples log of ours (``id``, ``response``); any other format is a DataError."""
    first = records[0][1]
    if "id" in first and "response" in first:
        ids = {s.id for s in samples}
        out: dict[str, Response] = {}
        for lineno, rec in records:
            if "id" not in rec or "response" not in rec:
                raise DataError(f"{path}:{lineno}: missing field 'id' or 'response' (harness samples log)")
            if rec["response"] is not None and str(rec["id"]) in ids:
                try:
                    out[str(rec["id"])] = Response.from_record(rec["response"])
                except ValueError as exc:  # counted as this sample's error, never read as an empty answer
                    out[str(rec["id"])] = Response(error=f"{path}:{lineno}: {exc}")
        keys = [(str(rec["id"]), "") for _, rec in records if rec["response"] is not None]
        last = {key[0]: i for i, key in enumerate(keys) if key[0] in ids}  # the later line of an id wins
        return AnswerFile(out, path.parent.parent.name or path.stem, _join_notes(path, keys, set(last.values())))
    raise DataError(
        f"{path}:{records[0][0]}: unknown answers format: expected 'question_id' and 'text' (LLaVA answers) "
        "or 'id' and 'response' (a harness samples log)"
    )


@dataclass
class LoadedAnswers:
    """An answers file joined to the task's samples (in the answers file's order)."""

    task: Task
    protocol: Protocol
    samples: list[Sample]  # every sample the protocol evaluates: answered ones first, in the file's order
    responses: dict[str, Response]
    n_answered: int
    data_root: Path
    model_label: str
    notes: list[str]


def _answers_path(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise UsageError(f"--answers: '{path}' does not exist")
    return path


def load_answers(task: Task, protocol: Protocol, path: Path, root: Path | None) -> LoadedAnswers:
    """Read the files the task's official scorer reads (``load_for``: a question file only if it is there) and
    join an answers file to them."""
    if path.is_dir():
        raise UsageError(f"--answers: '{path}' is a folder; task {task.name} reads answers from a JSONL file")
    if root is None:
        raise UsageError("this needs the task's annotation files: pass --data-root DIR (or set HARNESS_DATA_ROOT)")
    require_data([task], root, "score")
    # A large answers file is parsed by a child while the samples load (answer_columns.py); a task with its own
    # join reads whole lines, which the child does not send.
    with read_ahead(path, enabled=_default_join(task)) as ahead:
        samples = task.select(load_for(task, root, "score"), protocol.settings_for(task))
        answers = read_answers(path, task, samples, ahead.columns())
    by_id = {s.id: s for s in samples}
    answered = [by_id[sid] for sid in answers.responses if sid in by_id]
    unanswered = [s for s in samples if s.id not in answers.responses] if len(answered) < len(samples) else []
    return LoadedAnswers(
        task, protocol, answered + unanswered, answers.responses, len(answered), root, answers.model_label,
        answers.notes,
    )


def judge_results_root(options: ScoreOptions, answers: Path) -> Path | None:
    """Where judge replies are cached: ``--output-dir``, else the results root of the run whose samples
    log is scored (``<root>/<run>/samples/<task>.jsonl``); None: not cached."""
    if options.output_dir:
        return Path(options.output_dir)
    run_dir = answers.resolve().parent.parent
    if answers.is_file() and answers.parent.name == SAMPLES_DIR and (run_dir / RESULTS_FILE).is_file():
        return run_dir.parent
    return None


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off inside the block (reference counting still frees memory), as it was after.

    Loading and scoring build millions of small objects that stay alive to the end; each collection pass
    walks all of them, which took over half of ``harness score vqav2_val`` on the full val set.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.freeze()  # what the block made goes to the oldest generation unscanned (no full pass on enable)
            gc.unfreeze()
            gc.enable()


def score_answers(options: ScoreOptions) -> Scored:
    task = get_task(options.task)
    protocol = load_protocol(options.protocol)
    if not protocol.supports(task):
        raise UsageError(f"protocol '{protocol.name}' has no settings for task {task.name}")
    options.judge.check()
    if task.judged and options.judge.spec is None:
        raise UsageError(judge_requirement(task, no_judge_allowed=False))
    path = _answers_path(options.answers)
    root = resolve_data_root(options.data_root)
    settings = options.judge.settings(protocol.settings_for(task))
    cache = judge_cache_for(judge_results_root(options, path)) if options.judge.spec else None
    judge: OpenAIJudge | None = None
    try:
        judge = build_judge(options.judge, cache)
        special = task.score_path(path, root, settings, judge)
        if special is not None:
            add_intervals(task, special, sample_records(task.name, [], special, {}))
            return Scored(special, [], {}, root, path.name)
        with paused_gc():  # ~10^7 objects that all live to the end: the cyclic collector only rescans them
            loaded = load_answers(task, protocol, path, root)
            # Each task treats unanswered questions as its official tool does (wrong, FAILED, or left out).
            result = task.score(loaded.samples, loaded.responses, settings, judge=judge)
            saved = bool(options.output_dir)  # the samples log's lines; unsaved, only the intervals read records
            if saved:
                records = sample_records(task.name, loaded.samples, result, loaded.responses)
            else:
                records = statistics_records(loaded.samples, result.samples)
            add_intervals(task, result, records)
        info = judge.info(options.judge.runs) if judge is not None else None
        usage = usage_since(judge, JudgeUsage()) if judge is not None else None
    finally:
        if judge is not None:
            judge.close()
        if cache is not None:
            cache.close()
    result.notes.extend(loaded.notes)
    if loaded.n_answered == 0:
        result.notes.append(f"no answer in {path.name} matches a question of {task.name}")
    kept = records if saved else []  # Scored.records are samples-log lines
    return Scored(result, loaded.samples, loaded.responses, root, loaded.model_label, info, usage, settings, kept)


def export_answers(task_name: str, answers: str, data_root: str | None, output: str) -> Path:
    """``harness export``: the test-server submission file for an answers file."""
    task = get_task(task_name)
    if task.export_filename is None:
        raise UsageError(f"task {task.name} has no export format")
    loaded = load_answers(task, load_protocol(DEFAULT_PROTOCOL), _answers_path(answers), resolve_data_root(data_root))
    for note in loaded.notes:
        print(f"note: {note}", file=sys.stderr)
    return task.export(loaded.samples, loaded.responses, loaded.data_root, Path(output))


def save_scored(scored: Scored, options: ScoreOptions) -> Path:
    """Write a run directory and a store entry for a scored answers file."""
    from harness.results.recorder import RunRecorder, new_result, protocol_info  # the store: SQLAlchemy, 0.3 s

    assert options.output_dir is not None
    results_root = Path(options.output_dir)
    task = get_task(options.task)
    protocol = load_protocol(options.protocol)
    root = scored.data_root
    fingerprints = {task.name: data_fingerprint(task, root, "score")} if root is not None and scored.samples else {}
    spec = RunSpec(
        command="score",
        tasks=[task.name],
        data_root=str(root or ""),
        output_dir=str(results_root.resolve()),
        answers=str(Path(options.answers).resolve()),
        protocol=protocol.name,
        argv=options.argv,
    )
    model = ModelInfo(spec=f"answers:{options.answers}", name=scored.model_label)
    data = DataInfo(root=str(root or ""), is_demo=bool(root and is_demo_root(root)), fingerprints=fingerprints)
    result = new_result(spec, model, data, protocol_info(protocol), run_id=new_run_id(f"score-{scored.model_label}"))
    result.judge = scored.judge
    recorder = RunRecorder(results_root, options.store, result)
    recorder.add_task(
        scored.result, scored.samples, scored.responses, protocol_settings=scored.settings,
        records=scored.records or None,
        data_fingerprint=fingerprints.get(task.name, ""), judge_usage=scored.judge_usage,
    )
    why = scored.failure()
    recorder.finish("failed" if why else "complete", why)
    recorder.close()
    return recorder.path


def result_json(result: TaskResult) -> dict[str, Any]:
    """The ``--json`` form: the task result without the per-sample list, plus a flat name -> value map."""
    payload = result.model_dump(exclude={"samples"})
    payload["scores"] = {name: m.value for name, m in result.metrics.items()}
    return payload
