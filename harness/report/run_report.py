"""``python -m harness report RUN [--vs BASE] [--output DIR]``: a markdown + PNG summary of a run.

For papers and pull requests: the headline table with 95% intervals and, with ``--vs``, harness
compare's deltas, intervals, tests and changed samples (B = RUN against A = BASE), and one bar chart
(one panel per headline metric, the interval as an error bar). Run text is escaped in the markdown;
control characters are shown as ``\\xNN`` in the markdown and the chart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.console import safe_text
from harness.errors import UsageError
from harness.results.loading import RunData, load_run

REPORT_FILE = "report.md"
CHART_FILE = "headline.png"


@dataclass
class Report:
    folder: Path
    markdown: Path
    chart: Path


def _md(text: object, limit: int = 120) -> str:
    from harness.report.compare_gate import md

    return md(text, limit)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _ci(low: float | None, high: float | None) -> str:
    return "n/a" if low is None or high is None else f"[{low:.2f}, {high:.2f}]"


def _tasks(run: RunData, wanted: list[str] | None) -> list[str]:
    if wanted is None:
        return list(run.tasks)
    missing = [t for t in wanted if t not in run.tasks]
    if missing:
        raise UsageError(f"--tasks: {', '.join(missing)} not in {run.label}; it has {', '.join(run.tasks)}")
    return wanted


def headline_table(run: RunData, tasks: list[str]) -> list[str]:
    lines = [
        "| task | metric | value | 95% CI | n | errors | parse failures | interval method |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in tasks:
        rec = run.tasks[name].record
        for metric in rec.headline:
            m = rec.metrics.get(metric)
            if m is None:
                continue
            lines.append(
                f"| {_md(name)} | {_md(metric)} | {_num(m.value)} | {_ci(m.ci_low, m.ci_high)} | {m.n} | "
                f"{rec.n_errors} | {rec.n_parse_failures} | {_md(m.method or 'n/a', 160)} |"
            )
    return lines


def _about(run: RunData) -> list[str]:
    info = run.info
    demo = " **(demo: synthetic data or the demo model, not a benchmark score)**" if run.is_demo else ""
    lines = [f"- run: {_md(run.label, 200)}{demo}"]
    if run.model:
        lines.append(f"- model: {_md(run.model)} ({_md(info.get('model_spec', ''), 200)})")
    if run.protocol:
        lines.append(f"- protocol: {_md(run.protocol)}")
    if info.get("git_commit"):
        dirty = " (uncommitted changes)" if info.get("git_dirty") else ""
        lines.append(f"- harness commit: {_md(info['git_commit'])}{dirty}")
    if info.get("limit"):
        lines.append(f"- subset: --limit {info['limit']} per task")
    return lines


def _plain(text: str, limit: int = 28) -> str:
    """A chart label: short, no control character and no ``$`` (matplotlib would read mathtext)."""
    text = " ".join(safe_text(text).split()).replace("$", r"\$")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chart(run: RunData, base: RunData | None, tasks: list[str], path: Path) -> None:
    from harness.report.plots import Bar, interval_bars

    panels = []
    for name in tasks:
        rec = run.tasks[name].record
        for metric in rec.headline:
            bars = []
            for label, source in (("A", base), ("B", run)) if base is not None else (("", run),):
                if source is None or name not in source.tasks:
                    continue
                m = source.tasks[name].record.metrics.get(metric)
                if m is not None:
                    bars.append(Bar(label or _plain(source.model or source.label, 16), m.value, m.ci_low, m.ci_high))
            if bars:
                panels.append((safe_text(f"{name} · {metric}"), bars))
    if base is not None:
        title = (f"A = {_plain(base.model or base.label)} ({_plain(base.label)})   "
                 f"B = {_plain(run.model or run.label)} ({_plain(run.label)})")
    else:
        title = f"{_plain(run.model or run.label)} ({_plain(run.label)}): headline metrics, 95% intervals"
    fig = interval_bars(panels, title)
    fig.savefig(path, dpi=120)


def write_report(run_text: str, vs: str | None, output: str | None, store: str | None,
                 tasks: list[str] | None = None) -> Report:
    """Write report.md and headline.png; returns their paths."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise UsageError("report needs matplotlib: pip install -e '.[leaderboard]'") from exc
    run = load_run(run_text, "RUN", store)
    base = load_run(vs, "--vs", store) if vs else None
    names = _tasks(run, tasks)
    folder = Path(output) if output else Path("reports") / (run.label + (f"-vs-{base.label}" if base else ""))
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# Report: {_md(run.model or run.label)}", "", *_about(run), "", "## Headline metrics", ""]
    lines += headline_table(run, names)
    if base is not None:
        from harness.report.compare_gate import compare_markdown
        from harness.stats.compare import compare_runs

        common = [t for t in names if t in base.tasks]
        lines += ["", f"## Against {_md(base.model or base.label)} (A = {_md(base.label, 200)}, "
                      f"B = {_md(run.label, 200)})", ""]  # fmt: skip
        lines += _about(base)
        section = compare_markdown(compare_runs(base, run, tasks=common))
        lines += ["", section.replace("## harness compare", "### Paired comparison (harness compare)", 1)]
    lines += ["", f"![headline metrics with 95% intervals]({CHART_FILE})", ""]
    markdown = folder / REPORT_FILE
    markdown.write_text(safe_text("\n".join(lines)), encoding="utf-8")
    chart(run, base, names, folder / CHART_FILE)
    return Report(folder, markdown, folder / CHART_FILE)
