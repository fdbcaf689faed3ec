"""What the CLI prints: the run banner (demo labels included) and the final headline tables.

Streams, as lmms-eval users expect (``harness run ... > table.txt``): the results table on stdout; the
banner, progress, per-task timings and the results path on stderr.

Text from users, files and models (paths, model names, notes, answers) is untrusted: it reaches rich
only through ``plain`` (markup escaped, so ``[/]`` prints as itself instead of crashing), and every
text output goes through ``safe_text`` (control characters shown as ``\\x1b``-style escapes, so an
answer cannot reset the terminal, set its title or hide text).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.adapter import ModelInfo
from harness.protocol import Protocol
from harness.results.outcome import judge_failures, scoring_failure
from harness.results.schema import RunResult, TaskRecord
from harness.types import Metric, TaskResult

# C0 controls except tab and newline, DEL, and the C1 controls (U+0080-U+009F; U+009B is a one-character CSI).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# In JSON every C0 control is already escaped; DEL and C1 are written raw unless escaped here.
_JSON_RAW_CONTROL = re.compile("[\x7f-\x9f]")


def safe_text(text: object) -> str:
    """``text`` with each control character but newline and tab replaced by a visible ``\\xNN`` escape."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def plain(text: object) -> str:
    """Untrusted text for a rich markup string: control characters made visible, markup escaped."""
    return escape(safe_text(text))


def safe_json(text: str) -> str:
    """Serialised JSON with DEL and C1 controls written as ``\\u00NN`` (the same data, nothing raw)."""
    return _JSON_RAW_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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
    about = f"{info.name} ({info.spec}; {info.dtype} on {info.device}, template {info.template})"
    console.print(f"model    {model_label}{plain(about)}")
    console.print(f"data     {data_label}{plain(root)}")
    console.print(f"protocol {plain(protocol.name)} v{plain(protocol.version)}")
    if info.is_demo or demo_data:
        console.print("[yellow]demo results are synthetic: they show the pipeline works, not a benchmark score[/]")


def _value_cell(metric: Metric | None, record: TaskRecord | TaskResult, first: bool) -> str:
    """The value, its s.e. and interval; "not computed" for a missing metric; judge failures beside it."""
    if metric is None:
        text = "not computed"
    else:
        known = metric.ci_low is not None and metric.ci_high is not None
        interval = f"[{metric.ci_low:.2f}, {metric.ci_high:.2f}]" if known else ""
        text = f"{metric.value:.2f}" + ("" if metric.stderr is None else f" ± {metric.stderr:.2f}") + f"\n{interval}"
    failed = judge_failures(record) if first else None
    if failed is not None:
        text += f"\njudge failed on {failed[0]} of {failed[1]}"
    return text


def _task_rows(table: Table, name: str, record: TaskRecord | TaskResult, rate: float | None) -> None:
    first = True
    scored = scoring_failure(record) is None
    for metric_name in record.headline:
        metric = record.metrics.get(metric_name) if scored else None
        if metric is None and (scored or not first):
            continue
        table.add_row(
            plain(name) if first else "",
            plain(metric_name),
            _value_cell(metric, record, first),
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


def table_console(console: Console) -> Console:
    """Where the results table goes: stdout when ``console`` is the CLI's stderr log, else ``console`` itself
    (a caller that passes its own console, such as a file or a capture, gets everything there)."""
    if console.stderr and console.file is sys.stderr:
        return Console(quiet=console.quiet)
    return console


def print_run_summary(console: Console, result: RunResult, run_dir: Path) -> None:
    """The headline table (on ``table_console``), then each task's timing and notes and the results path."""
    demo = " [DEMO]" if (result.data.is_demo or (result.model and result.model.is_demo)) else ""
    table = headline_table(f"{plain(result.run_id)}{escape(demo)}")
    for name, record in result.tasks.items():
        _task_rows(table, name, record, record.timing.samples_per_second)
    table_console(console).print(table)
    for name, record in result.tasks.items():
        t = record.timing
        console.print(
            f"{plain(name)}: {t.n_generated} generated, {t.n_cached} from cache, {t.seconds:.1f} s"
            + (f", {record.n_errors} errors (see samples log)" if record.n_errors else "")
        )
        for note in record.notes:
            console.print(f"  note: {plain(note)}")
    console.print(f"results: {plain(run_dir / 'results.json')}")


def print_task_result(console: Console, result: TaskResult) -> None:
    table = headline_table(f"{plain(result.task)} v{plain(result.version)}")
    _task_rows(table, result.task, result, None)
    console.print(table)
    failure = scoring_failure(result)
    if failure is not None:  # the other metrics are as hollow as the headline: say why instead
        console.print(f"  [red]{plain(failure)}[/]")
    else:
        others = [n for n in result.metrics if n not in result.headline]
        if others:
            console.print("  " + ", ".join(f"{plain(n)} {format_metric(result.metrics[n])}" for n in others))
        for group, metrics in result.breakdowns.items():
            cells = ", ".join(f"{plain(k)} {m.value:.2f}" for k, m in metrics.items())
            console.print(f"  {plain(group)}: {cells}")
    if result.n_missing:
        console.print(f"  [yellow]{result.n_missing} samples have no answer[/]")
    for note in result.notes:
        console.print(f"  note: {plain(note)}")
