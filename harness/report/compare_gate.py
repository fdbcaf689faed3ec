"""Markdown and JUnit XML for compare and gate (pull-request comments, CI test reports).

Sample text (questions, model answers) is untrusted: in markdown it is escaped so that it renders
as plain text (no HTML, no links, no table breaks); in XML the writer escapes it. Control characters
(terminal escapes, C1 codes) are shown as ``\\xNN`` everywhere: these documents go to terminals too.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from harness.console import safe_text
from harness.stats.compare import Comparison, MetricComparison, TaskComparison
from harness.stats.gate import GateResult

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(text: object, limit: int = 120) -> str:
    """Plain text for a markdown table cell: one line, control, markdown and HTML characters neutralised."""
    value = " ".join(safe_text(text).split())
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", value)


def num(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def pvalue(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def paired_cells(m: MetricComparison | None) -> tuple[str, str]:
    """A's and B's values on the paired samples (the ones the difference is computed on); where there are
    no paired statistics, the recorded whole-run values marked with ``*``."""
    if m is None:
        return "n/a", "n/a"
    if m.a_paired is not None or m.b_paired is not None:
        return num(m.a_paired), num(m.b_paired)
    return (num(m.a) + "*" if m.a is not None else "n/a"), (num(m.b) + "*" if m.b is not None else "n/a")


def whole_run_differs(m: MetricComparison) -> bool:
    pairs = ((m.a, m.a_paired), (m.b, m.b_paired))
    return any(whole is not None and paired is not None and abs(whole - paired) > 1e-9 for whole, paired in pairs)


def interval(m: MetricComparison) -> str:
    return "n/a" if m.low is None or m.high is None else f"[{m.low:+.2f}, {m.high:+.2f}]"


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _run_line(label: str, run: dict) -> str:
    demo = " (demo)" if run.get("is_demo") else ""
    model = f", model {md(run['model'])}" if run.get("model") else ""
    protocol = f", protocol {md(run['protocol'])}" if run.get("protocol") else ""
    code = " ".join(safe_text(run["label"]).split()).replace("`", "'")
    return f"- **{label}**: `{code}`{model}{protocol}{demo}"


def _metric_rows(tasks: Iterable[TaskComparison]) -> list[list[str]]:
    rows = []
    for t in tasks:
        for m in t.metrics:
            discordant = f" ({m.a_only} vs {m.b_only} discordant)" if m.a_only is not None else ""
            rows.append([
                md(t.task), md(m.metric), *paired_cells(m), num(m.diff, signed=True), interval(m),
                md(m.test) + discordant, pvalue(m.p_value), f"**{md(m.verdict)}**",
            ])  # fmt: skip
    return rows


def _pairing_lines(tasks: Iterable[TaskComparison], a: str = "A", b: str = "B") -> list[str]:
    lines = []
    starred = False
    for t in tasks:
        unpaired = f"; unpaired: {t.only_a} only in {a}, {t.only_b} only in {b}" if t.only_a or t.only_b else ""
        lines.append(f"- {md(t.task)}: {t.n_paired} paired samples{unpaired}")
        whole = [m for m in t.metrics if whole_run_differs(m)]
        if whole:
            values = "; ".join(f"{md(m.metric)} {a} {num(m.a)}, {b} {num(m.b)}" for m in whole)
            lines.append(f"  - whole runs ({t.n_a} samples in {a}, {t.n_b} in {b}), not paired: {values}")
        starred = starred or any(m.a_paired is None and m.b_paired is None and m.a is not None for m in t.metrics)
        lines.extend(f"  - note: {md(n, 300)}" for n in t.notes)
    if starred:
        lines.append("- \\* recorded whole-run value: no paired statistics for that metric")
    return lines


def _flip_lines(t: TaskComparison, a: str = "A", b: str = "B") -> list[str]:
    if not t.n_flips:
        return []
    shown = f" (first {len(t.flips)})" if len(t.flips) < t.n_flips else ""
    lines = ["", f"#### {md(t.task)}: {t.n_flips} samples changed score{shown}", ""]
    rows = [[md(f.id, 60), md(f.question, 80), md(f.answer_a, 60), num(f.score_a), md(f.answer_b, 60), num(f.score_b)]
            for f in t.flips]  # fmt: skip
    return lines + _table(["id", "question", f"{a} answer", a, f"{b} answer", b], rows)


METHOD_NOTE = (
    "A, B and their difference B − A are computed on the paired samples (both runs scored them; whole-run "
    "values are listed under the table where they differ); intervals are 95% paired cluster-bootstrap percentile "
    "intervals. Tests: McNemar's exact test (two-sided; clustered McNemar where clusters hold several samples) "
    "for means of 0/1 scores, a paired bootstrap p-value otherwise."
)


def compare_markdown(c: Comparison) -> str:
    lines = ["## harness compare", "", _run_line("A", c.a), _run_line("B", c.b), ""]
    header = ["task", "metric", "A (paired)", "B (paired)", "Δ (B − A)", "95% CI", "test", "p", "verdict"]
    lines += _table(header, _metric_rows(c.tasks))
    lines += ["", *_pairing_lines(c.tasks)]
    lines += [f"- note: {md(n, 300)}" for n in c.notes]
    lines += ["", f"_{METHOD_NOTE} {c.resamples} resamples._"]
    for t in c.tasks:
        lines += _flip_lines(t)
    return safe_text("\n".join(lines) + "\n")


def _skipped_text(g: GateResult) -> str:
    return f"{len(g.skipped)} skipped (baseline tasks not run by the candidate: {', '.join(g.not_run)})"


def gate_markdown(g: GateResult) -> str:
    failures = g.failures
    checked = len(g.checks) - len(g.skipped)
    if failures:
        head = f"## ❌ harness gate: {len(failures)} of {checked} checks failed"
    elif not checked:
        head = "## ❌ harness gate: the candidate ran none of the baseline's tasks"
    else:
        head = f"## ✅ harness gate: all {checked} checks passed"
    if g.skipped:
        head += f"; {_skipped_text(g)}"
    lines = [head, "", _run_line("baseline", g.baseline), _run_line("candidate", g.candidate), ""]
    for check in failures:
        lines.append(f"- **{md(check.task)} / {md(check.metric)}**: {md(check.reason, 400)}")
    if failures:
        lines.append("")
    rows = []
    for check in g.checks:
        m = check.comparison
        verdict = "⏭ skipped" if check.skipped else "✅ pass" if check.passed else "❌ FAIL"
        rows.append([
            verdict, md(check.task), md(check.metric), *paired_cells(m), num(m.diff if m else None, signed=True),
            interval(m) if m else "n/a", f"{check.max_drop:g}", pvalue(m.p_worse if m else None), md(check.reason, 300),
        ])  # fmt: skip
    lines += _table(["", "task", "metric", "baseline (paired)", "candidate (paired)", "Δ", "95% CI", "max drop",
                     "p (worse)", "why"], rows)  # fmt: skip
    lines += ["", *_pairing_lines(g.tasks, "baseline", "candidate")]
    lines += [f"- note: {md(n, 300)}" for n in g.notes]
    lines += ["", f"_A check fails when the drop exceeds its tolerance and the one-sided test rejects at alpha = "
              f"{g.alpha:g}. {METHOD_NOTE}_"]  # fmt: skip
    for t in g.tasks:
        lines += _flip_lines(t, "baseline", "candidate")
    return safe_text("\n".join(lines) + "\n")


def gate_junit(g: GateResult) -> str:
    """JUnit XML: one testsuite, one testcase per task/metric; a failed check is a <failure>."""
    suite = ET.Element("testsuite", name="harness gate", tests=str(len(g.checks)),
                       failures=str(len(g.failures)), errors="0", skipped=str(len(g.skipped)))  # fmt: skip
    for check in g.checks:
        case = ET.SubElement(suite, "testcase", classname=f"harness.gate.{check.task}", name=check.metric, time="0")
        m = check.comparison
        details = check.reason
        if m is not None:
            a, b = paired_cells(m)
            whole = f" (whole runs: baseline {num(m.a)}, candidate {num(m.b)})" if whole_run_differs(m) else ""
            details += (
                f"\nbaseline {a}, candidate {b} on the paired samples{whole}, "
                f"paired difference {num(m.diff, signed=True)} "
                f"95% CI {interval(m)}, {m.test} two-sided p {pvalue(m.p_value)}, one-sided p {pvalue(m.p_worse)}, "
                f"max drop {check.max_drop:g}"
            )
        if check.skipped:
            ET.SubElement(case, "skipped", message=f"{check.task}: {check.reason}")
        elif check.passed:
            ET.SubElement(case, "system-out").text = details
        else:
            failure = ET.SubElement(case, "failure", message=f"{check.task} {check.metric}: {check.reason}",
                                    type="regression")  # fmt: skip
            failure.text = details
    root = ET.Element("testsuites", name="harness gate", tests=str(len(g.checks)), failures=str(len(g.failures)),
                      skipped=str(len(g.skipped)))  # fmt: skip
    root.append(suite)
    ET.indent(root)
    # XML 1.0 cannot hold most control characters; they are shown as \xNN, like everywhere else
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + safe_text(ET.tostring(root, encoding="unicode")) + "\n"
