"""The leaderboard's queries and frames: runs, headline metrics, the board table, history series.

Plain pandas over the results store, opened read-only; the pages only lay these frames out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import pandas as pd
from sqlalchemy import and_, cast, func, null, select
from sqlalchemy.orm import Session

from harness.results.store import MetricRow, ResultsStore, RunRow, TaskRow
from leaderboard.paper import PaperModel

# Board column order: the LLaVA-1.5 table's, then any other task alphabetically.
# LLaVA-1.5's table order (VQAv2, GQA, VizWiz, SQA, TextVQA, POPE, MME, MMBench, MMBench-CN, SEED, ...), then MMMU
TASK_ORDER = ("vqav2", "vqav2_val", "gqa", "vizwiz", "vizwiz_val", "textvqa", "scienceqa", "pope", "mme", "mmbench",
              "mmbench_cn", "seed_bench", "mmmu", "mmvet", "llava_bench")  # fmt: skip
# Largest possible value of headline metrics not on a 0-100 scale (for the normalised average).
METRIC_MAX = {("mme", "perception"): 2000.0, ("mme", "cognition"): 800.0, ("mme", "total"): 2800.0}
SOURCES = ("real", "demo", "paper")

RUN_COLUMNS = [
    "run_id", "model", "model_spec", "llm", "vision_tower", "n_parameters", "protocol", "protocol_hash", "source",
    "created", "finished", "status", "command", "step", "training_run", "git_branch", "git_commit", "git_dirty",
    "run_dir", "data_root", "limit",
]  # fmt: skip
HEAD_COLUMNS = ["run_id", "task", "metric", "value", "ci_low", "ci_high", "stderr", "n", "method", "samples"]


def open_store(url: str) -> ResultsStore:
    """The store at ``url``, read-only (StoreError when missing or older than this harness)."""
    return ResultsStore(url, readonly=True)


def _limit_column(store: ResultsStore):  # type: ignore[no-untyped-def]
    """The run's ``--limit`` (``spec.limit`` of its stored results.json), read by the database itself."""
    dialect = store.engine.dialect.name
    if dialect == "sqlite":
        return func.json_extract(RunRow.results_json, "$.spec.limit").label("limit")
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        return cast(RunRow.results_json, JSONB)["spec"]["limit"].astext.label("limit")
    return null().label("limit")


def runs_frame(store: ResultsStore) -> pd.DataFrame:
    """One row per run, newest first."""
    cols = [
        RunRow.id, RunRow.model_name, RunRow.model_spec, RunRow.llm, RunRow.vision_tower, RunRow.n_parameters,
        RunRow.protocol, RunRow.is_demo_data, RunRow.is_demo_model, RunRow.created, RunRow.finished,
        RunRow.status, RunRow.command, RunRow.step, RunRow.training_run, RunRow.git_branch, RunRow.git_commit,
        RunRow.git_dirty, RunRow.run_dir, RunRow.data_root, RunRow.protocol_hash, _limit_column(store),
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
            "limit": r.limit,
        })  # fmt: skip
    frame = pd.DataFrame.from_records(records, columns=RUN_COLUMNS)
    frame["created"] = pd.to_datetime(frame["created"])
    frame["step"] = frame["step"].astype("Int64")
    frame["limit"] = pd.to_numeric(frame["limit"], errors="coerce").astype("Int64")
    return frame


def limits(runs: pd.DataFrame) -> pd.Series:
    """Each run's ``--limit`` (NA: every sample); frames without the column hold full runs."""
    if "limit" in runs:
        return runs["limit"].astype("Int64")
    return pd.Series(pd.NA, index=runs.index, dtype="Int64")


def sample_set(limit: object) -> str:
    """How a run's sample set is named: "every sample" or "--limit N" (the same fixed subset each time)."""
    return "every sample" if limit is None or pd.isna(limit) else f"--limit {int(limit)}"  # type: ignore[arg-type]


def headline_frame(store: ResultsStore) -> pd.DataFrame:
    """Each run's headline metric per task (the task's first headline): one query."""
    stmt = (
        select(MetricRow.run_id, MetricRow.task, MetricRow.name, MetricRow.value, MetricRow.ci_low,
               MetricRow.ci_high, MetricRow.stderr, MetricRow.n, MetricRow.method, TaskRow.n_samples)
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
    demo_apart: bool = True  # demo rows ranked (and shown) apart from real runs and paper rows


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
    """The board: ``table`` (numbers; ``<task>``, ``<task> ci_low``, ``<task> ci_high`` per task) and notes.

    Rows are ranked within their ``group``: full runs of real data with the paper rows; each ``--limit``
    subset apart (its own ranks: a subset's numbers are not comparable with full runs'); demo rows apart from
    paper rows (unless ``demo_apart`` is off). ``averaged`` names, per group, the tasks its average is over."""

    table: pd.DataFrame
    tasks: list[str]
    metrics: dict[str, str] = field(default_factory=dict)  # task -> its headline metric
    averaged: dict[str, list[str]] = field(default_factory=dict)  # group -> the tasks its average is over


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
    base["limit"] = limits(shown)
    base["reference"] = ""
    for task in tasks:
        sub = head[head["task"] == task].set_index("run_id")
        base[task] = base["run_id"].map(sub["value"])
        base[f"{task} ci_low"] = base["run_id"].map(sub["ci_low"])
        base[f"{task} ci_high"] = base["run_id"].map(sub["ci_high"])
    base["n"] = base["run_id"].map(_sample_counts(head, tasks)).fillna("")
    if len(papers):
        extra = papers[["run_id", "model", "source", "llm", "vision_tower", "n_parameters", "protocol", "created",
                        "reference"]].copy()  # fmt: skip
        by_name = {p.name: p for p in paper}
        for task in tasks:
            extra[task] = [by_name[name].scores.get(task, math.nan) for name in extra["model"]]
            extra[f"{task} ci_low"] = math.nan
            extra[f"{task} ci_high"] = math.nan
        extra["limit"] = pd.array([pd.NA] * len(extra), dtype="Int64")
        extra["n"] = ""
        base = pd.concat([base.astype({"created": "datetime64[us]"}), extra.astype({"created": "datetime64[us]"})],
                         ignore_index=True) if len(base) else extra.reset_index(drop=True)  # fmt: skip
    table, averaged = _add_average_and_rank(base.reset_index(drop=True), tasks, metrics, f)
    return Board(table=table, tasks=tasks, metrics={t: metrics.get(t, "") for t in tasks}, averaged=averaged)


def _sample_counts(head: pd.DataFrame, tasks: Sequence[str]) -> dict[str, str]:
    """run id -> its samples per task: "48" when every task has that many, else "gqa 120 · mme 56"."""
    out: dict[str, str] = {}
    for run_id, rows in head[head["task"].isin(tasks)].groupby("run_id", sort=False):
        column = rows["samples"] if "samples" in rows else rows["n"]  # samples scored (the metric's n otherwise)
        counts = {t: int(n) for t, n in zip(rows["task"], column) if pd.notna(n)}
        ordered = [(t, counts[t]) for t in order_tasks(list(counts))]
        if len({n for _, n in ordered}) == 1:
            out[str(run_id)] = str(ordered[0][1])
        else:
            out[str(run_id)] = " · ".join(f"{t} {n}" for t, n in ordered)
    return out


def _paper_metric(task: str) -> str:
    return {"mme": "perception", "scienceqa": "img_accuracy", "mmbench": "circular", "mmvet": "total",
            "llava_bench": "relative", "vqav2": "test-dev", "vqav2_val": "overall", "pope": "f1",
            "vizwiz": "test-dev", "vizwiz_val": "overall", "mmbench_cn": "circular"}.get(task, "accuracy")  # fmt: skip


def group_name(demo: bool, limit: object) -> str:
    """The ranking group of a row: "benchmark" or "demo", and its sample set."""
    return f"{'demo' if demo else 'benchmark'}, {sample_set(limit)}"


def _average_tasks(rows: pd.DataFrame, tasks: list[str], chosen: Sequence[str]) -> list[str]:
    """The tasks a group's average is over: the chosen ones, else the set of tasks that the group's runs
    have which covers the most (rows x tasks): with one task set (the demo's gqa, mme) that set; a run with
    fewer tasks is left unranked rather than cutting every row's average down to its tasks."""
    if chosen:
        return [t for t in tasks if t in chosen]
    runs = rows[rows["source"] != "paper"]
    pool = runs if len(runs) else rows
    sets = [frozenset(t for t in tasks if pd.notna(v)) for v in pool[tasks].itertuples(index=False)] if tasks else []
    sets = [s for s in sets if s]
    if not sets:
        return []
    candidates = set(sets) | {frozenset.intersection(*sets)}
    candidates.discard(frozenset())

    def cover(s: frozenset) -> tuple[int, int, int]:
        rows_with = sum(s <= x for x in sets)
        return len(s) * rows_with, rows_with, len(s)

    best = max(candidates, key=lambda s: (*cover(s), sorted(s)))
    return [t for t in tasks if t in best]


def _add_average_and_rank(table: pd.DataFrame, tasks: list[str], metrics: dict[str, str],
                          f: BoardFilters) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Per ranking group: the average of its tasks' values on a 0-100 scale (MME over its maximum; a row
    missing one of them has none) and the rank by it."""
    demo = (table["source"] == "demo") & f.demo_apart
    limit = limits(table) if "limit" in table else pd.Series(pd.NA, index=table.index, dtype="Int64")
    table["group"] = [group_name(d, lim) for d, lim in zip(demo, limit)]
    table["subset"] = ["" if pd.isna(lim) else sample_set(lim) for lim in limit]
    order = {g: (g.startswith("demo"), 0 if g.endswith("every sample") else 1, lim if pd.notna(lim) else 0)
             for g, lim in zip(table["group"], limit)}  # fmt: skip
    table["average"] = math.nan
    table["rank"] = pd.array([pd.NA] * len(table), dtype="Int64")
    averaged: dict[str, list[str]] = {}
    for group in sorted(order, key=lambda g: order[g]):
        rows = table["group"] == group
        chosen = _average_tasks(table[rows], tasks, f.tasks)
        averaged[group] = chosen
        if chosen:
            scaled = pd.concat([table.loc[rows, t].astype("float64") * (100.0 / metric_max(t, metrics.get(t, "")))
                                for t in chosen], axis=1)  # fmt: skip
            table.loc[rows, "average"] = scaled.mean(axis=1, skipna=False)
        table.loc[rows, "rank"] = table.loc[rows, "average"].rank(ascending=False, method="min").astype("Int64")
    table["_group_order"] = [order[g] for g in table["group"]]
    table = table.sort_values(["_group_order", "rank", "created"], ascending=[True, True, False],
                              na_position="last", kind="stable")  # fmt: skip
    return table.drop(columns="_group_order").reset_index(drop=True), averaged


def interval_text(low: float | None, high: float | None) -> str:
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return ""
    return f"{low:.1f} – {high:.1f}"


def display_table(board: Board, demo: bool | None = None) -> pd.DataFrame:
    """The board for the screen: sizes in billions, one text interval column per task; ``demo``: only the
    rows ranked apart as demo (True) or only the others (False)."""
    t = board.table
    if demo is not None:
        t = t[t["group"].str.startswith("demo") == demo]
    out = pd.DataFrame({
        "rank": t["rank"], "model": t["model"], "source": t["source"], "subset": t["subset"], "n": t["n"],
        "LLM": t["llm"], "vision": t["vision_tower"], "size (B)": t["n_parameters"].astype("float64") / 1e9,
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
    cols = ["group", "rank", "model", "source", "limit", "n", "llm", "vision_tower", "n_parameters", "protocol",
            "created", "step", "git_branch", "run_id", "average"]  # fmt: skip
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


def sample_sets(runs: pd.DataFrame, by: str, value: str) -> list[str]:
    """The sample sets (``sample_set``) of a history's complete runs, the one with the most runs first (ties:
    every sample first, then the smaller subsets)."""
    chosen = runs[(runs[by] == value) & (runs["status"] == "complete")]
    counts = pd.Series([sample_set(v) for v in limits(chosen)]).value_counts()
    size = {name: (0 if name == "every sample" else int(name.split()[-1])) for name in counts.index}
    return sorted(counts.index, key=lambda name: (-int(counts[name]), name != "every sample", size[name]))


def history_frame(runs: pd.DataFrame, heads: pd.DataFrame, by: str, value: str,
                  samples: str | None = None) -> pd.DataFrame:
    """Scores of one training run, model or git branch (``by``: a column of HISTORY_GROUPS) over its runs,
    on one sample set (``samples``: a ``sample_set`` name; None: every run).

    Columns: run_id, created, step, sample_set, x (the training step when every run has one, else the
    time), task, metric, value, ci_low, ci_high. Ordered by x.
    """
    chosen = runs[(runs[by] == value) & (runs["status"] == "complete")].copy()
    chosen["sample_set"] = [sample_set(v) for v in limits(chosen)]
    if samples is not None:
        chosen = chosen[chosen["sample_set"] == samples]
    merged = chosen[["run_id", "created", "step", "sample_set"]].merge(heads, on="run_id")
    use_step = len(chosen) > 0 and chosen["step"].notna().all()
    merged["x"] = merged["step"].astype("float64") if use_step else merged["created"]
    merged.attrs["x_is_step"] = bool(use_step)
    return merged.sort_values(["task", "x", "run_id"]).reset_index(drop=True)
