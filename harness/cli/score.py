"""``harness score`` (an answers file, no model) and ``harness export`` (a test-server submission)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.cli.flags import add_judge_flags, judge_options


def add_parsers(sub: argparse._SubParsersAction) -> None:
    score = sub.add_parser("score", help="score an answers file without a model")
    score.add_argument("task")
    score.add_argument(
        "--answers", required=True, help="LLaVA answers JSONL, a samples log, or (mme) an eval_tool folder"
    )
    score.add_argument("--data-root", default=None)
    score.add_argument("--json", action="store_true", help="print the task result as one JSON object, nothing else")
    score.add_argument("--output-dir", default=None, help="also save a run directory and store entry here")
    score.add_argument("--store", default=None)
    score.add_argument("--protocol", default="llava15",
                       help="whose scoring rules to apply (llava15, lmms-eval, or a protocol .toml file)")
    add_judge_flags(score)
    score.set_defaults(handler=score_main, on_interrupt="no results were written")

    export = sub.add_parser(
        "export",
        help="write a test-server submission file from an answers file, or a run in lmms-eval's layout",
        description="harness export TASK --answers FILE --output FILE: a test-server submission file.\n"
        "harness export lmms-eval RUN --output DIR: a run (directory, results.json or store id) as lmms-eval's "
        "{date}_results.json and {date}_samples_{task}.jsonl under DIR/{model}/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("task", help="a task name, or 'lmms-eval' to export a run")
    export.add_argument("run", nargs="?", default=None, help="(lmms-eval) the run directory, results.json or store id")
    export.add_argument("--answers", default=None, help="LLaVA answers JSONL or a samples log (TASK exports)")
    export.add_argument("--data-root", default=None)
    export.add_argument("--output", required=True, help="the submission file (or, lmms-eval, the folder) to write")
    export.add_argument("--store", default=None, help="(lmms-eval) the results store holding RUN when it is an id")
    export.set_defaults(handler=export_main)


def score_main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.cli import keep_until_exit
    from harness.errors import ScoringFailed
    from harness.run.score_answers import ScoreOptions, judge_results_root, result_json, save_scored, score_answers

    options = ScoreOptions(
        args.task, args.answers, demo_root_unless_given(args.task, args.data_root, args.answers), args.output_dir,
        args.store, args.protocol, list(argv), judge_options(args),
    )
    if options.judge.spec and judge_results_root(options, Path(args.answers).expanduser()) is not None:
        args.on_interrupt += "; the judge replies received so far are cached: the same command reuses them"
    scored = score_answers(options)
    keep_until_exit(scored)  # the samples, answers and records of a 214k-question set are not freed one by one
    run_dir = save_scored(scored, options) if args.output_dir else None
    if args.json:
        from harness.console import safe_json

        sys.stdout.write(safe_json(json.dumps(result_json(scored.result), ensure_ascii=False)) + "\n")
    else:
        from rich.console import Console

        from harness.console import plain, print_task_result

        console = Console()
        print_task_result(console, scored.result)
        if run_dir is not None:
            Console(stderr=True).print(f"saved: {plain(run_dir / 'results.json')}")
    why = scored.failure()
    if why:
        raise ScoringFailed(why)
    return 0


def demo_root_unless_given(task_name: str, data_root: str | None, answers: str) -> str | None:
    """``--data-root``, else ``$HARNESS_DATA_ROOT``, else (as ``run`` does) the demo root, said on stderr; an
    answers folder (MME's eval_tool results) is scored without a data root, as before."""
    import os

    if data_root or os.environ.get("HARNESS_DATA_ROOT") or Path(answers).expanduser().is_dir():
        return data_root
    from harness.console import safe_text
    from harness.data.demo import ensure_demo_root
    from harness.registry import get_task

    root = ensure_demo_root([get_task(task_name)])
    print(f"data     DEMO DATA {safe_text(root)} (no --data-root or HARNESS_DATA_ROOT given)", file=sys.stderr)
    return str(root)


def export_main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.console import safe_text
    from harness.errors import UsageError

    if args.task == "lmms-eval":
        from harness.importers.lmms_eval_export import export_lmms_eval

        if args.run is None or args.answers is not None:
            raise UsageError("export lmms-eval: give the run (directory, results.json or store id), not --answers")
        written = export_lmms_eval(args.run, args.output, args.store)
        print(f"wrote {safe_text(written)}")
        return 0
    from harness.run.score_answers import export_answers

    if args.answers is None or args.run is not None:
        raise UsageError(f"export {args.task}: --answers FILE is required (and no second argument)")
    written = export_answers(args.task, args.answers, args.data_root, args.output)
    print(f"wrote {safe_text(written)}")
    return 0
