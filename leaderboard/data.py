"""The leaderboard's queries and frames: runs, headline metrics, the board table, history series.

Plain pandas over the results store, opened read-only; the pages only lay these frames out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import pandas as pd
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from harness.results.store import MetricRow, ResultsStore, RunRow, TaskRow
from leaderboard.paper import PaperModel

# Board column order: the LLaVA-1.5 table's, then any other task alphabetically.
TASK_ORDER = ("vqav2", "vqav2_val", "gqa", "textvqa", "scienceqa", "mme", "mmbench", "mmvet", "llava_bench")
# Largest possible value of headline metrics not on a 0-100 scale (for the normalised average).
METRIC_MAX = {("mme", "perception"): 2000.0, ("mme", "cognition"): 800.0, ("mme", "total"): 2800.0}
SOURCES = ("real", "demo", "paper")

RUN_COLUMNS = [
    "run_id", "model", "model_spec", "llm", "vision_tower", "n_parameters", "protocol", "protocol_hash", "source",
    "created", "finished", "status", "command", "step", "training_run", "git_branch", "git_commit", "git_dirty",
    "run_dir", "data_root",
]  # fmt: skip
HEAD_COLUMNS = ["run_id", "task", "metric", "value", "ci_low", "ci_high", "stderr", "n", "method"]


def open_store(url: str) -> ResultsStore:
    """The store at ``url``, read-only (StoreError when missing or older than this harness)."""
    return ResultsStore(url, readonly=True)


def runs_frame(store: ResultsStore) -> pd.DataFrame:
    """One row per run, newest first."""
    cols = [
        RunRow.id, RunRow.model_name, RunRow.model_spec, RunRow.llm, RunRow.vision_tower, RunRow.n_parameters,
        RunRow.protocol, RunRow.is_demo_data, RunRow.is_demo_model, RunRow.created, RunRow.finished,
        RunRow.status, RunRow.command, RunRow.step, RunRow.training_run, RunRow.git_branch, RunRow.git_commit,
        RunRow.git_dirty, RunRow.run_dir, RunRow.data_root, RunRow.protocol_hash,
    ]  # fmt: skip
    with Session(store.engine) as session:
        rows = session.execute(select(*cols).order_by(RunRow.created.desc(), RunRow.id)).all()
    records = []
    for r in rows:
        records.append({
            "run_id": r.id, "model": r.model_name, "model_spec": r.model_spec, "llm": r.llm or "",
            "vision_tower": r.vision_tower or "", "n_parameters": r.n_parameters, "protocol": r.protocol or "",
            "protocol_hash": r.protocol_hash or "", "source": "demo" if (r.is_demo_data or r.is_demo_model) else "real",
            "created": r.created, "finished": r.finished, "status": r.status, "command": r.command, "step": r.step,
            "training_run": r.training_run or "", "git_branch": r.git_branch or "",
            "git_commit": r.git_commit or "", "git_dirty": r.git_dirty, "run_dir": r.run_dir, "data_root": r.data_root,
        })  # fmt: skip
    frame = pd.DataFrame.from_records(records, columns=RUN_COLUMNS)
    frame["created"] = pd.to_datetime(frame["created"])
    frame["step"] = frame["step"].astype("Int64")
    return frame


def headline_frame(store: ResultsStore) -> pd.DataFrame:
    """Each run's headline metric per task (the task's first headline): one query."""
    stmt = (
        select(MetricRow.run_id, MetricRow.task, MetricRow.name, MetricRow.value, MetricRow.ci_low,
               MetricRow.ci_high, MetricRow.stderr, MetricRow.n, MetricRow.method)
        .join(TaskRow, and_(TaskRow.run_id == MetricRow.run_id, TaskRow.task == MetricRow.task))
        .where(MetricRow.breakdown == "", MetricRow.name == TaskRow.headline_metric)
    )  # fmt: skip
    with Session(store.engine) as session:
        rows = session.execute(stmt).all()
    return pd.DataFrame.from_records([tuple(r) for r in rows], columns=HEAD_COLUMNS)


def order_tasks(tasks: Sequence[str]) -> list[str]:
    known = [t for t in TASK_ORDER if t in tasks]
    return known + sorted(set(tasks) - set(known))


def metric_max(task: str, metric: str) -> float:
    return METRIC_MAX.get((task, metric), 100.0)


@dataclass(frozen=True)
class BoardFilters:
    """What the board shows. Empty selections mean everything."""

    llms: tuple[str, ...] = ()
    vision_towers: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    sources: tuple[str, ...] = ("real", "demo")
    size_b: tuple[float, float] | None = None  # billions of parameters; None: any (and unknown) size
    dates: tuple[date, date] | None = None
    text: str = ""  # case-insensitive substring of the model name or run id
    tasks: tuple[str, ...] = ()  # the columns shown and averaged (empty: every task present)
    complete_only: bool = True


def _matches(runs: pd.DataFrame, f: BoardFilters) -> pd.Series:
    keep = pd.Series(True, index=runs.index)
    if f.llms:
        keep &= runs["llm"].isin(f.llms)
    if f.vision_towers:
        keep &= runs["vision_tower"].isin(f.vision_towers)
    if f.protocols:
        keep &= runs["protocol"].isin(f.protocols)
    keep &= runs["source"].isin(f.sources)
    if f.size_b is not None:
        size = runs["n_parameters"].astype("float64") / 1e9
        keep &= size.between(f.size_b[0], f.size_b[1]).fillna(False).astype(bool)
    if f.text:
        needle = f.text.lower()
        keep &= runs["model"].str.lower().str.contains(needle, regex=False) | runs["run_id"].str.lower().str.contains(
            needle, regex=False
        )
    return keep


def filter_runs(runs: pd.DataFrame, f: BoardFilters) -> pd.DataFrame:
    """The runs the filters keep (paper rows are added by ``board_frame``)."""
    keep = _matches(runs, f)
    if f.dates is not None and len(runs):
        day = runs["created"].dt.date
        keep &= (day >= f.dates[0]) & (day <= f.dates[1])
    if f.complete_only:
        keep &= runs["status"] == "complete"
    return runs[keep]


@dataclass
class Board:
    """The board: ``table`` (numbers; ``<task>``, ``<task> ci_low``, ``<task> ci_high`` per task) and notes."""

    table: pd.DataFrame
    tasks: list[str]
    metrics: dict[str, str] = field(default_factory=dict)  # task -> its headline metric


def _paper_rows(paper: Sequence[PaperModel], f: BoardFilters) -> pd.DataFrame:
    rows = [{
        "run_id": "", "model": p.name, "llm": p.llm, "vision_tower": p.vision_tower, "n_parameters": p.n_parameters,
        "protocol": p.protocol, "source": "paper", "created": pd.NaT, "status": "complete", "reference": p.source,
    } for p in paper]  # fmt: skip
    frame = pd.DataFrame(rows, columns=[*RUN_COLUMNS, "reference"])
    return frame[_matches(frame, f)] if len(frame) else frame


def board_frame(runs: pd.DataFrame, heads: pd.DataFrame, f: BoardFilters,
                paper: Sequence[PaperModel] = ()) -> Board:
    """Models x tasks: headline value and interval per task, normalised average and rank."""
    shown = filter_runs(runs, f)
    head = heads[heads["run_id"].isin(shown["run_id"])]
    papers = _paper_rows(paper, f) if "paper" in f.sources else _paper_rows((), f)
    run_tasks = set(head["task"])
    paper_tasks = {t for p in paper if p.name in set(papers["model"]) for t in p.scores}
    if f.tasks:
        tasks = order_tasks([t for t in f.tasks if t in run_tasks | paper_tasks])
    else:  # the tasks the shown runs have (paper rows alone: theirs)
        tasks = order_tasks(sorted(run_tasks or paper_tasks))
    metrics = dict(zip(head["task"], head["metric"]))
    for p in paper:
        for task in p.scores:
            metrics.setdefault(task, _paper_metric(task))
    base = shown[["run_id", "model", "source", "llm", "vision_tower", "n_parameters", "protocol", "created",
                  "step", "git_branch"]].copy()  # fmt: skip
    base["reference"] = ""
    for task in tasks:
        sub = head[head["task"] == task].set_index("run_id")
        base[task] = base["run_id"].map(sub["value"])
        base[f"{task} ci_low"] = base["run_id"].map(sub["ci_low"])
        base[f"{task} ci_high"] = base["run_id"].map(sub["ci_high"])
    if len(papers):
        extra = papers[["run_id", "model", "source", "llm", "vision_tower", "n_parameters", "protocol", "created",
                        "reference"]].copy()  # fmt: skip
        by_name = {p.name: p for p in paper}
        for task in tasks:
            extra[task] = [by_name[name].scores.get(task, math.nan) for name in extra["model"]]
            extra[f"{task} ci_low"] = math.nan
            extra[f"{task} ci_high"] = math.nan
        base = pd.concat([base.astype({"created": "datetime64[us]"}), extra.astype({"created": "datetime64[us]"})],
                         ignore_index=True) if len(base) else extra.reset_index(drop=True)  # fmt: skip
    table = _add_average_and_rank(base.reset_index(drop=True), tasks, metrics)
    return Board(table=table, tasks=tasks, metrics={t: metrics.get(t, "") for t in tasks})


def _paper_metric(task: str) -> str:
    return {"mme": "perception", "scienceqa": "img_accuracy", "mmbench": "circular", "mmvet": "total",
            "llava_bench": "relative", "vqav2": "test-dev", "vqav2_val": "overall"}.get(task, "accuracy")  # fmt: skip


def _add_average_and_rank(table: pd.DataFrame, tasks: list[str], metrics: dict[str, str]) -> pd.DataFrame:
    """Average of the tasks' values on a 0-100 scale (MME over its maximum); a row missing a task has none."""
    if tasks:
        scaled = pd.concat(
            [table[t].astype("float64") * (100.0 / metric_max(t, metrics.get(t, ""))) for t in tasks], axis=1
        )
        table["average"] = scaled.mean(axis=1, skipna=False)
    else:
        table["average"] = math.nan
    table["rank"] = table["average"].rank(ascending=False, method="min").astype("Int64")
    table = table.sort_values(["rank", "created"], ascending=[True, False], na_position="last", kind="stable")
    return table.reset_index(drop=True)


def interval_text(low: float | None, high: float | None) -> str:
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return ""
    return f"{low:.1f} – {high:.1f}"


def display_table(board: Board) -> pd.DataFrame:
    """The board for the screen: sizes in billions, one text interval column per task."""
    t = board.table
    out = pd.DataFrame({
        "rank": t["rank"], "model": t["model"], "source": t["source"], "LLM": t["llm"],
        "vision": t["vision_tower"], "size (B)": t["n_parameters"].astype("float64") / 1e9,
        "protocol": t["protocol"], "date": t["created"], "average": t["average"],
    })  # fmt: skip
    for task in board.tasks:
        out[task] = t[task]
        out[f"{task} 95% CI"] = [interval_text(lo, hi) for lo, hi in zip(t[f"{task} ci_low"], t[f"{task} ci_high"])]
    out["run"] = t["run_id"]
    out["step"] = t.get("step", pd.NA)
    return out


def board_csv(board: Board) -> bytes:
    """The board as CSV: every number with its interval bounds, and each paper row's source."""
    t = board.table
    cols = ["rank", "model", "source", "llm", "vision_tower", "n_parameters", "protocol", "created", "step",
            "git_branch", "run_id", "average"]  # fmt: skip
    for task in board.tasks:
        cols += [task, f"{task} ci_low", f"{task} ci_high"]
    cols.append("reference")
    table = t.reindex(columns=cols)
    for column in table.columns:
        if not pd.api.types.is_numeric_dtype(table[column]):
            table[column] = table[column].map(_inert_cell)
    return table.to_csv(index=False).encode("utf-8")


def _inert_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first) gets a
    leading ``'``, so opening the CSV shows the text instead of evaluating it."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def choices(runs: pd.DataFrame, column: str) -> list[str]:
    return sorted({v for v in runs[column].dropna() if v != ""})


def run_label(row: pd.Series | dict) -> str:
    """How a run is named in pickers: model, date, run id."""
    created = row["created"]
    when = created.strftime("%Y-%m-%d %H:%M") if isinstance(created, datetime | pd.Timestamp) else ""
    return f"{row['model']} · {when} · {row['run_id']}"


# --- history -----------------------------------------------------------------------------------


HISTORY_GROUPS = {"training run": "training_run", "model": "model", "git branch": "git_branch"}


def history_frame(runs: pd.DataFrame, heads: pd.DataFrame, by: str, value: str) -> pd.DataFrame:
    """Scores of one training run, model or git branch (``by``: a column of HISTORY_GROUPS) over its runs.

    Columns: run_id, created, step, x (the training step when every run has one, else the time),
    task, metric, value, ci_low, ci_high. Ordered by x.
    """
    chosen = runs[(runs[by] == value) & (runs["status"] == "complete")]
    merged = chosen[["run_id", "created", "step"]].merge(heads, on="run_id")
    use_step = len(chosen) > 0 and chosen["step"].notna().all()
    merged["x"] = merged["step"].astype("float64") if use_step else merged["created"]
    merged.attrs["x_is_step"] = bool(use_step)
    return merged.sort_values(["task", "x", "run_id"]).reset_index(drop=True)
