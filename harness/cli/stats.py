"""The ``compare``, ``gate`` and ``plan`` subcommands (parsers and handlers)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.cli.flags import int_at_least, probability
from harness.errors import UsageError
from harness.stats import RESAMPLES

COMMANDS = ("compare", "gate", "plan")


_resamples = int_at_least(100, "resamples")


def _task_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def add_parsers(sub: argparse._SubParsersAction) -> None:
    compare = sub.add_parser("compare", help="paired comparison of two runs: differences, intervals, tests, flips")
    compare.add_argument("a", metavar="A", help="run directory, baseline file or store run id")
    compare.add_argument("b", metavar="B", help="run directory, baseline file or store run id")
    compare.add_argument("--tasks", default=None, help="comma-separated tasks (default: every task both have)")
    compare.add_argument("--format", choices=("markdown", "json"), default="markdown")
    compare.add_argument("--output", default=None, help="write the report here instead of stdout")
    compare.add_argument("--store", default=None, help="results store URL for run ids (default: results/harness.db)")
    compare.add_argument("--max-flips", type=int, default=20, help="changed samples listed per task (default 20)")
    compare.add_argument("--resamples", type=_resamples, default=RESAMPLES, help="bootstrap resamples (default 1000)")

    gate = sub.add_parser("gate", help="fail (exit 1) when a headline metric dropped significantly beyond a tolerance")
    gate.add_argument("--baseline", default=None, help="baseline file, run directory or store run id")
    gate.add_argument("--candidate", default=None, help="run directory or store run id to check")
    gate.add_argument("--tasks", default=None, help="comma-separated tasks (default: every baseline task)")
    gate.add_argument("--max-drop", action="append", default=None, metavar="X|TASK=X|TASK.METRIC=X",
                      help="largest tolerated drop in metric units (default 1.0); repeat or comma-separate "
                           "for per-task values, e.g. --max-drop 1.0 --max-drop mme=20")  # fmt: skip
    gate.add_argument("--require-all-tasks", action="store_true",
                      help="fail when the candidate did not run a baseline task (default: skip it and name it)")
    gate.add_argument("--alpha", type=probability, default=0.05, help="one-sided significance level (default 0.05)")
    gate.add_argument("--markdown", default=None, metavar="FILE", help="write the summary (a PR comment) here")
    gate.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML here (one testcase per metric)")
    gate.add_argument("--store", default=None, help="results store URL for run ids (default: results/harness.db)")
    gate.add_argument("--resamples", type=_resamples, default=RESAMPLES, help="bootstrap resamples (default 1000)")
    gate.add_argument("--write-baseline", default=None, metavar="RUN",
                      help="instead of gating: write a baseline file from RUN (with --output)")  # fmt: skip
    gate.add_argument("--output", default=None, metavar="FILE", help="--write-baseline: the baseline file to write")

    plan = sub.add_parser("plan", help="how many samples a CI subset needs to detect a drop of a given size")
    plan.add_argument("--task", required=True)
    plan.add_argument("--run", required=True, help="a full run of the task (run directory or store run id)")
    plan.add_argument("--detect", type=float, required=True, help="the drop to detect, in metric units (e.g. 2.0)")
    plan.add_argument("--power", type=probability, default=0.8)
    plan.add_argument("--alpha", type=probability, default=0.05, help="one-sided, as the gate tests")
    plan.add_argument("--metric", default=None, help="default: the task's first headline metric")
    plan.add_argument("--against", default=None, help="a second run on the same samples: measures the correlation")
    plan.add_argument("--correlation", type=float, default=0.5,
                      help="assumed correlation of two models' per-sample outcomes without --against (default 0.5)")
    plan.add_argument("--store", default=None)
    plan.add_argument("--json", action="store_true")
    for parser in (compare, gate, plan):
        parser.set_defaults(handler=dispatch)


def _write(text: str, output: str | None) -> None:
    """``text`` to stdout or a file, with no raw control character (JSON callers escape theirs first)."""
    from harness.console import safe_text

    text = safe_text(text)
    if output is None:
        sys.stdout.write(text)
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.console import safe_json, safe_text
    from harness.report.compare_gate import compare_markdown
    from harness.results.loading import load_run
    from harness.stats.compare import compare_runs

    if args.max_flips < 0:
        raise UsageError(f"--max-flips must be 0 or more, got {args.max_flips}")
    a, b = load_run(args.a, "A", args.store), load_run(args.b, "B", args.store)
    result = compare_runs(a, b, _task_list(args.tasks), args.resamples, max_flips=args.max_flips)
    if args.format == "json":
        text = safe_json(json.dumps(result.to_json(), indent=2, ensure_ascii=False)) + "\n"
    else:
        text = compare_markdown(result)
    _write(text, args.output)
    if args.output:
        print(f"wrote {safe_text(args.output)}", file=sys.stderr)
    return 0


def cmd_gate(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.console import safe_text
    from harness.results.loading import load_run

    if args.write_baseline is not None:
        from harness.stats.baseline import write_baseline

        if not args.output:
            raise UsageError("--write-baseline needs --output FILE (the baseline file to write)")
        run = load_run(args.write_baseline, "--write-baseline", args.store)
        command = "python -m harness " + " ".join(shlex.quote(a) for a in argv)
        path = write_baseline(run, Path(args.output), _task_list(args.tasks), command)
        print(safe_text(f"wrote baseline {path} from run {run.label}"))
        return 0
    from harness.report.compare_gate import gate_junit, gate_markdown
    from harness.stats.gate import parse_tolerances, run_gate

    for flag in ("baseline", "candidate"):
        if getattr(args, flag) is None:
            raise UsageError(f"gate needs --{flag} (or --write-baseline RUN --output FILE)")
    default, specific = parse_tolerances(args.max_drop or [])
    baseline = load_run(args.baseline, "--baseline", args.store)
    candidate = load_run(args.candidate, "--candidate", args.store)
    result = run_gate(baseline, candidate, _task_list(args.tasks), default, specific, args.alpha, args.resamples,
                      require_all=args.require_all_tasks)  # fmt: skip
    markdown = gate_markdown(result)
    if args.markdown:
        _write(markdown, args.markdown)
    if args.junit:
        _write(gate_junit(result), args.junit)
    _write(markdown, None)
    return 0 if result.passed else 1


def cmd_plan(args: argparse.Namespace) -> int:
    from harness.results.loading import load_run
    from harness.stats.plan import plan_subset, plan_text

    run = load_run(args.run, "--run", args.store)
    against = load_run(args.against, "--against", args.store) if args.against else None
    plan = plan_subset(run, args.task, args.detect, args.power, args.alpha, args.metric, against, args.correlation)
    if args.json:
        _write(json.dumps(plan.to_json(), indent=2) + "\n", None)
    else:
        _write(plan_text(plan), None)
    return 0


def dispatch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.command == "compare":
        return cmd_compare(args)
    if args.command == "gate":
        return cmd_gate(args, argv)
    return cmd_plan(args)
