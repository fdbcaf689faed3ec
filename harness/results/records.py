"""Per-sample records: the lines of ``samples/<task>.jsonl``, what statistics and comparisons read.

A record is a dict with ``id``, ``score``, ``correct``, ``parsed``, ``metadata`` (the sample's) and
``detail`` (the scorer's), plus ``question`` / ``response`` in full logs. A *compact* record keeps only
what a task's statistics read (``Task.record_fields``) and a short answer, for baseline files.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.stats.bootstrap import Estimand, mean_estimand
from harness.data.readers import iter_jsonl

if TYPE_CHECKING:
    from harness.types import Sample, SampleScore

Record = Mapping[str, Any]
_ID, _SAMPLE_ID = attrgetter("id"), attrgetter("sample_id")
ANSWER_CHARS = 200


def statistics_records(samples: Sequence[Sample], scores: Sequence[SampleScore]) -> list[dict[str, Any]]:
    """What a task's statistics read of each sample's record: ``id``, ``score``, ``correct``, ``metadata`` and
    ``detail`` (the sample's and the score's own dicts, not copies), from ``Sample``s and their ``SampleScore``s.

    The records of a score that is not saved: under half the cost of the full samples-log lines on VQAv2 val.
    """
    paired: Iterable[tuple[Sample, SampleScore | None]]
    if len(scores) == len(samples) and list(map(_SAMPLE_ID, scores)) == list(map(_ID, samples)):
        paired = zip(samples, scores)  # one score per sample, in order: no lookups
    else:
        by_id = {s.sample_id: s for s in scores}
        paired = ((sample, by_id.get(sample.id)) for sample in samples)
    return [
        {"id": sample.id, "score": score.score, "correct": score.correct, "metadata": sample.metadata,
         "detail": score.detail} if score is not None else
        {"id": sample.id, "score": None, "correct": None, "metadata": sample.metadata, "detail": {}}
        for sample, score in paired
    ]  # fmt: skip


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of one samples log (a missing ``id`` is an error naming file and line)."""
    from harness.errors import DataError

    out = []
    for lineno, rec in iter_jsonl(path):
        if "id" not in rec:
            raise DataError(f"{path}:{lineno}: missing field 'id' (not a harness samples log)")
        rec["id"] = str(rec["id"])
        out.append(rec)
    return out


def meta(record: Record, key: str, default: Any = None) -> Any:
    """``record["metadata"][key]`` (``default`` when absent)."""
    value = (record.get("metadata") or {}).get(key)
    return default if value is None else value


def detail(record: Record, key: str, default: Any = None) -> Any:
    """``record["detail"][key]`` (``default`` when absent)."""
    value = (record.get("detail") or {}).get(key)
    return default if value is None else value


def scored(records: Iterable[Record]) -> list[Record]:
    """The records with a score of their own."""
    return [r for r in records if r.get("score") is not None]


def mean_rows(
    records: Iterable[Record], cluster: Any = None, value: str = "score"
) -> list[tuple[str, Hashable, float]]:
    """(id, cluster, value) of every record whose ``value`` field is set; ``cluster(record)`` defaults to the id."""
    rows = []
    for r in records:
        v = r.get(value)
        if v is None:
            continue
        rows.append((str(r["id"]), cluster(r) if cluster else str(r["id"]), float(v)))
    return rows


def mean_of(
    name: str,
    records: Iterable[Record],
    cluster: Any = None,
    unit: str = "sample",
    value: str = "score",
    scale: float = 100.0,
    binary: bool | None = None,
) -> Estimand:
    """``scale`` x the mean of a record field (default ``score``) over the records where it is set;
    ``binary``: whether it is a 0/1 outcome (None: judged from the values)."""
    return mean_estimand(name, mean_rows(records, cluster, value), scale, unit if cluster else "sample", binary)


def metadata_key(key: str) -> Any:
    """A cluster function: the record's ``metadata[key]``, else its id."""

    def cluster(record: Record) -> str:
        return str(meta(record, key, record["id"]))

    return cluster


def answer_text(record: Record, limit: int = ANSWER_CHARS) -> str:
    """The model's answer as shown in reports: the response text (else the parsed answer), shortened."""
    response = record.get("response")
    text = response.get("text") if isinstance(response, Mapping) else None
    if text is None:
        text = record.get("answer")
    if text is None:
        parsed = record.get("parsed")
        text = "" if parsed is None else str(parsed)
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compact(record: Record, fields: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The parts of a record a baseline file keeps: id, score, correct, a short answer and question,
    and the ``metadata`` / ``detail`` keys named in ``fields``."""
    out: dict[str, Any] = {"id": str(record["id"]), "score": record.get("score"), "correct": record.get("correct")}
    out["answer"] = answer_text(record)
    question = record.get("question")
    if question:
        out["question"] = shorten(str(question))
    for part in ("metadata", "detail"):
        keys = fields.get(part, ())
        source = record.get(part) or {}
        kept = {k: source[k] for k in keys if k in source}
        if kept:
            out[part] = kept
    return out


def shorten(text: str, limit: int = ANSWER_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
