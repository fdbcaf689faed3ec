"""``harness score`` (an answers file, no model) and ``harness export`` (a test-server submission)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

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
    score.set_defaults(handler=score_main)

    export = sub.add_parser("export", help="write a test-server submission file from an answers file")
    export.add_argument("task")
    export.add_argument("--answers", required=True, help="LLaVA answers JSONL or a samples log")
    export.add_argument("--data-root", default=None)
    export.add_argument("--output", required=True, help="the submission file to write")
    export.set_defaults(handler=export_main)


def score_main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from rich.console import Console

    from harness.console import plain, print_task_result, safe_json
    from harness.errors import ScoringFailed
    from harness.run.score_answers import ScoreOptions, result_json, save_scored, score_answers

    options = ScoreOptions(
        args.task, args.answers, args.data_root, args.output_dir, args.store, args.protocol, list(argv),
        judge_options(args),
    )
    scored = score_answers(options)
    run_dir = save_scored(scored, options) if args.output_dir else None
    if args.json:
        sys.stdout.write(safe_json(json.dumps(result_json(scored.result), ensure_ascii=False)) + "\n")
    else:
        console = Console()
        print_task_result(console, scored.result)
        if run_dir is not None:
            console.print(f"saved: {plain(run_dir / 'results.json')}")
    why = scored.failure()
    if why:
        raise ScoringFailed(why)
    return 0


def export_main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.console import safe_text
    from harness.run.score_answers import export_answers

    written = export_answers(args.task, args.answers, args.data_root, args.output)
    print(f"wrote {safe_text(written)}")
    return 0
