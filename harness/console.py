"""What the CLI prints: the run banner (demo labels included) and the final headline tables."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.adapter import ModelInfo
from harness.protocol import Protocol
from harness.results.schema import RunResult, TaskRecord
from harness.types import Metric, TaskResult


def format_metric(metric: Metric) -> str:
    """``value ± s.e. [low, high]`` (the parts that are known)."""
    text = f"{metric.value:.2f}"
    if metric.stderr is not None:
        text += f" ± {metric.stderr:.2f}"
    if metric.ci_low is not None and metric.ci_high is not None:
        text += f" [{metric.ci_low:.2f}, {metric.ci_high:.2f}]"
    return text


def print_banner(console: Console, info: ModelInfo, root: Path, demo_data: bool, protocol: Protocol) -> None:
    model_label = "[bold yellow]DEMO MODEL[/] " if info.is_demo else ""
    data_label = "[bold yellow]DEMO DATA[/] " if demo_data else ""
    console.print(
        f"model    {model_label}{info.name} ({info.spec}; {info.dtype} on {info.device}, template {info.template})"
    )
    console.print(f"data     {data_label}{root}")
    console.print(f"protocol {protocol.name} v{protocol.version}")
    if info.is_demo or demo_data:
        console.print("[yellow]demo results are synthetic: they show the pipeline works, not a benchmark score[/]")


def _task_rows(table: Table, name: str, record: TaskRecord | TaskResult, rate: float | None) -> None:
    first = True
    for metric_name in record.headline:
        metric = record.metrics.get(metric_name)
        if metric is None:
            continue
        known = metric.ci_low is not None and metric.ci_high is not None
        interval = f"[{metric.ci_low:.2f}, {metric.ci_high:.2f}]" if known else ""
        table.add_row(
            name if first else "",
            metric_name,
            f"{metric.value:.2f}" + ("" if metric.stderr is None else f" ± {metric.stderr:.2f}") + f"\n{interval}",
            str(record.n_samples) if first else "",
            str(record.n_errors) if first else "",
            str(record.n_parse_failures) if first else "",
            (f"{rate:.1f}" if rate else "-") if first else "",
        )
        first = False


def headline_table(title: str) -> Table:
    table = Table(title=title)
    for col in ("task", "metric", "value ± s.e.\n[95% CI]", "n", "errors", "unparsed", "samples/s"):
        table.add_column(col, justify="left" if col in ("task", "metric") else "right", no_wrap=col != "samples/s")
    return table


def print_run_summary(console: Console, result: RunResult, run_dir: Path) -> None:
    demo = " [DEMO]" if (result.data.is_demo or (result.model and result.model.is_demo)) else ""
    table = headline_table(f"{result.run_id}{demo}")
    for name, record in result.tasks.items():
        _task_rows(table, name, record, record.timing.samples_per_second)
    console.print(table)
    for name, record in result.tasks.items():
        t = record.timing
        console.print(
            f"{name}: {t.n_generated} generated, {t.n_cached} from cache, {t.seconds:.1f} s"
            + (f", {record.n_errors} errors (see samples log)" if record.n_errors else "")
        )
        for note in record.notes:
            console.print(f"  note: {note}")
    console.print(f"results: {run_dir / 'results.json'}")


def print_task_result(console: Console, result: TaskResult) -> None:
    table = headline_table(f"{result.task} v{result.version}")
    _task_rows(table, result.task, result, None)
    console.print(table)
    others = [n for n in result.metrics if n not in result.headline]
    if others:
        console.print("  " + ", ".join(f"{n} {format_metric(result.metrics[n])}" for n in others))
    for group, metrics in result.breakdowns.items():
        cells = ", ".join(f"{k} {m.value:.2f}" for k, m in metrics.items())
        console.print(f"  {group}: {cells}")
    if result.n_missing:
        console.print(f"  [yellow]{result.n_missing} samples have no answer[/]")
    for note in result.notes:
        console.print(f"  note: {note}")
