"""``python -m harness``: run, score, export, list, data, serve."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from harness.errors import HarnessError, UsageError
from harness.judges import JudgeOptions
from harness.task import Task

DEFAULT_OUTPUT = "results"


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value}")
    return number


def _add_judge_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("judge (tasks graded by an LLM, and MMBench's choice extractor)")
    group.add_argument("--judge", default=None, metavar="openai:MODEL|demo",
                       help="grade with MODEL at an OpenAI-compatible endpoint, or the demo model served in-process")
    group.add_argument("--judge-base-url", default=None, metavar="URL",
                       help="the endpoint's base URL, e.g. http://127.0.0.1:8000/v1 (default: OpenAI's API)")
    group.add_argument("--judge-api-key-env", default=None, metavar="NAME",
                       help="environment variable holding the API key (default: OPENAI_API_KEY; never recorded)")
    group.add_argument("--judge-runs", type=_positive, default=None, metavar="N",
                       help="grading runs per answer (overrides the protocol's judge_runs)")
    group.add_argument("--judge-concurrency", type=_positive, default=4, metavar="N", help="judge calls in flight")
    group.add_argument("--judge-timeout", type=_seconds, default=60.0, metavar="S", help="seconds per judge call")
    group.add_argument("--judge-retries", type=_non_negative, default=3, metavar="N",
                       help="retries of a call after a transport error (with exponential backoff)")  # fmt: skip


def _judge_options(args: argparse.Namespace) -> JudgeOptions:
    return JudgeOptions(
        spec=args.judge,
        base_url=args.judge_base_url,
        api_key_env=args.judge_api_key_env,
        runs=args.judge_runs,
        concurrency=args.judge_concurrency,
        timeout=args.judge_timeout,
        retries=args.judge_retries,
    )


def build_parser() -> argparse.ArgumentParser:
    from harness.demo import DEMO_MODEL_SPEC

    parser = argparse.ArgumentParser(prog="harness", description="Evaluate TinyLLaVA-style models exactly.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run tasks on a model")
    run.add_argument("--tasks", required=True, help="comma-separated task names (see `harness list`)")
    run.add_argument("--model", default=DEMO_MODEL_SPEC, help="ADAPTER:TARGET, e.g. tinyllava:/ckpt (default: demo)")
    run.add_argument("--model-args", default=None, help="adapter options k=v,k=v (e.g. conv=phi,dtype=float32)")
    run.add_argument("--batch-size", type=_positive, default=16)
    run.add_argument("--limit", type=_positive, default=None,
                     help="a fixed stratified subset of about N samples per task (the same ids every run)")
    run.add_argument(
        "--data-root", default=None, help="LLaVA eval layout root (default: $HARNESS_DATA_ROOT, else demo data)"
    )
    run.add_argument("--output-dir", default=DEFAULT_OUTPUT, help="results root (run dirs, cache, store)")
    run.add_argument("--store", default=None, help="results store URL (default: sqlite in --output-dir)")
    run.add_argument("--protocol", default="llava15")
    run.add_argument("--device", choices=("cpu", "cuda"), default=None)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--num-workers", type=int, default=None, help="DataLoader workers for image decoding")
    run.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("--no-judge", action="store_true",
                     help="judged tasks: generate and keep the answers without scoring (score later with --judge)")
    _add_judge_flags(run)

    score = sub.add_parser("score", help="score an answers file without a model")
    score.add_argument("task")
    score.add_argument(
        "--answers", required=True, help="LLaVA answers JSONL, a samples log, or (mme) an eval_tool folder"
    )
    score.add_argument("--data-root", default=None)
    score.add_argument("--json", action="store_true", help="print the task result as one JSON object, nothing else")
    score.add_argument("--output-dir", default=None, help="also save a run directory and store entry here")
    score.add_argument("--store", default=None)
    score.add_argument("--protocol", default="llava15", help="whose scoring rules to apply (llava15, lmms-eval)")
    _add_judge_flags(score)

    serve = sub.add_parser("serve", help="serve a model behind an OpenAI-compatible chat-completions API")
    serve.add_argument("--model", default=DEMO_MODEL_SPEC, help="ADAPTER:TARGET, e.g. tinyllava:/ckpt (default: demo)")
    serve.add_argument("--model-args", default=None, help="adapter options k=v,k=v")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="0: any free port (the URL is printed)")
    serve.add_argument("--batch-size", type=_positive, default=8, help="most requests answered in one generate call")
    serve.add_argument("--batch-wait-ms", type=float, default=5.0, help="how long a batch waits for more requests")
    serve.add_argument("--served-model-name", default=None, help="the model id clients see (default: the model's name)")
    serve.add_argument("--device", choices=("cpu", "cuda"), default=None)
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--verbose", action="store_true", help="log every request to stderr")

    export = sub.add_parser("export", help="write a test-server submission file from an answers file")
    export.add_argument("task")
    export.add_argument("--answers", required=True, help="LLaVA answers JSONL or a samples log")
    export.add_argument("--data-root", default=None)
    export.add_argument("--output", required=True, help="the submission file to write")

    convert = sub.add_parser("convert", help="write any TinyLLaVA checkpoint as a plain HF Llava checkpoint")
    convert.add_argument("src", help="checkpoint directory (legacy, Factory, projector-only, LoRA or HF Llava)")
    convert.add_argument("dst", help="output directory (new or empty)")
    convert.add_argument(
        "--model-args", default=None, help="base=PATH, tower=PATH, conv=NAME, dtype=..., image_aspect_ratio=..."
    )

    from harness.importers.command import add_import_parser

    add_import_parser(sub, DEFAULT_OUTPUT)

    from harness.board import add_leaderboard_parser
    from harness.report import add_report_parser

    add_leaderboard_parser(sub, DEFAULT_OUTPUT)
    add_report_parser(sub, DEFAULT_OUTPUT)

    from harness.stats_cli import add_parsers as add_stats_parsers

    add_stats_parsers(sub)

    lst = sub.add_parser("list", help="list tasks and model adapters")
    lst.add_argument("--json", action="store_true")

    data = sub.add_parser(
        "data",
        help="what each task needs; check a data root; prepare one from a Hugging Face copy",
        description="data [TASK] [--data-root DIR]: list or check files. "
        "data prepare TASK --source hf|DIR [--revision R] [--repo ID] --data-root DIR: build them.",
    )
    data.add_argument("words", nargs="*", metavar="[prepare] TASK", help="a task name, or 'prepare' and a task name")
    data.add_argument("--data-root", default=None)
    data.add_argument("--source", default=None, help="prepare: 'hf' (download from the hub) or a downloaded snapshot")
    data.add_argument("--revision", default=None, help="prepare --source hf: branch, tag or commit (default: main)")
    data.add_argument("--repo", default=None, help="prepare: dataset repo id instead of the task's own")
    data.add_argument("--no-progress", action="store_true")
    return parser


def _cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.evaluate import RunOptions, run
    from harness.runner import default_num_workers

    options = RunOptions(
        tasks=args.tasks,
        model=args.model,
        model_args=args.model_args,
        batch_size=args.batch_size,
        limit=args.limit,
        data_root=args.data_root,
        output_dir=args.output_dir,
        protocol=args.protocol,
        device=args.device,
        seed=args.seed,
        num_workers=default_num_workers() if args.num_workers is None else max(0, args.num_workers),
        store=args.store,
        use_cache=not args.no_cache,
        show_progress=not args.no_progress,
        judge=_judge_options(args),
        no_judge=args.no_judge,
        argv=list(argv),
    )
    run(options)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from harness.serve import ServeOptions, serve

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535; got {args.port}")
    return serve(
        ServeOptions(
            model=args.model,
            model_args=args.model_args,
            host=args.host,
            port=args.port,
            batch_size=args.batch_size,
            served_model_name=args.served_model_name,
            device=args.device,
            seed=args.seed,
            batch_wait_ms=max(0.0, args.batch_wait_ms),
            verbose=args.verbose,
        )
    )


def _cmd_score(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.console import print_task_result
    from harness.scoring import ScoreOptions, result_json, save_scored, score_answers

    options = ScoreOptions(
        args.task, args.answers, args.data_root, args.output_dir, args.store, args.protocol, list(argv),
        _judge_options(args),
    )
    scored = score_answers(options)
    run_dir = save_scored(scored, options) if args.output_dir else None
    if args.json:
        sys.stdout.write(json.dumps(result_json(scored.result), ensure_ascii=False) + "\n")
        return 0
    console = Console()
    print_task_result(console, scored.result)
    if run_dir is not None:
        console.print(f"saved: {run_dir / 'results.json'}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from harness.scoring import export_answers

    written = export_answers(args.task, args.answers, args.data_root, args.output)
    print(f"wrote {written}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from harness.registry import parse_model_args
    from model_adapters.convert import convert_checkpoint

    report = convert_checkpoint(args.src, args.dst, parse_model_args(args.model_args))
    print(f"converted {report.source_format} checkpoint to HF Llava: {report.destination} "
          f"(template {report.template}, image_aspect_ratio {report.image_aspect_ratio})")
    for line in report.warnings:
        print(line if line.startswith(" ") else f"warning: {line}")
    for line in report.notes:
        print(f"note: {line}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from harness.registry import get_adapter_class, get_task, model_names, task_names

    tasks = [get_task(n) for n in task_names()]
    adapters = [get_adapter_class(n) for n in model_names()]
    if args.json:
        payload = {
            "tasks": [
                {"name": t.name, "version": t.version, "judged": t.judged, "default_judge": t.default_judge,
                 "headline": list(t.headline), "description": t.description,
                 "files": [f.model_dump() for f in t.data_files()]}
                for t in tasks
            ],
            "models": [{"name": a.name, "description": a.description} for a in adapters],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    console = Console()
    table = Table(title="tasks")
    for col in ("task", "version", "judge", "headline", "files needed (score / +run)"):
        table.add_column(col)
    for t in tasks:
        files = "\n".join(f"{f.path}{'' if f.needed_for == 'score' else '  (+run)'}" for f in t.data_files())
        table.add_row(t.name, t.version, _judge_column(t), ", ".join(t.headline), files)
    console.print(table)
    models = Table(title="model adapters")
    models.add_column("adapter")
    models.add_column("description")
    for a in adapters:
        models.add_row(a.name, a.description)
    console.print(models)
    return 0


def _judge_column(task: Task) -> str:
    """``harness list``: whether a task needs a judge, and the papers' judge model."""
    if task.judged:
        return f"needed (paper: {task.default_judge})" if task.default_judge else "needed"
    return "no"


_PREPARE_ONLY = ("source", "revision", "repo")


def _cmd_data_dispatch(args: argparse.Namespace) -> int:
    """``data prepare TASK ...`` or ``data [TASK]``."""
    words = list(args.words)
    if words and words[0] == "prepare":
        if len(words) != 2:
            raise UsageError("usage: data prepare TASK --source hf|DIR --data-root DIR")
        return _cmd_data_prepare(words[1], args)
    given = [f"--{name}" for name in _PREPARE_ONLY if getattr(args, name) is not None]
    if given:
        raise UsageError(f"{', '.join(given)} only apply to 'data prepare TASK'")
    if len(words) > 1:
        raise UsageError(f"data takes one task name, got: {' '.join(words)}")
    args.task = words[0] if words else None
    return _cmd_data(args)


def _cmd_data_prepare(name: str, args: argparse.Namespace) -> int:
    from harness.dataprep import prepare_task, resolve_prepare_root
    from harness.registry import get_task

    if not args.source:
        raise UsageError("data prepare needs --source hf (download) or --source DIR (a downloaded snapshot)")
    task = get_task(name)
    root = resolve_prepare_root(args.data_root)
    console = Console(stderr=True)
    report = prepare_task(task, args.source, root, args.revision, args.repo, console, not args.no_progress)
    print(f"prepared {task.name} under {root}: {report.n_samples} samples; sources: {report.sources_file}")
    for line in report.notes:
        print(f"  note: {line}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from harness.datacheck import check_task, resolve_data_root
    from harness.registry import get_task, task_names

    tasks = [get_task(args.task)] if args.task else [get_task(n) for n in task_names()]
    root = resolve_data_root(args.data_root)
    console = Console()
    missing = 0
    for task in tasks:
        table = Table(title=f"{task.name} v{task.version}" + (f" under {root}" if root else ""), title_justify="left")
        for col in ("path", "needed for", "status" if root else "description", "source"):
            table.add_column(col)
        if root is None:
            for f in task.data_files():
                table.add_row(f.path, f.needed_for, f.description, f.source)
        else:
            for st in check_task(task, root, "run"):
                missing += not st.present
                status = f"[green]ok[/] {st.detail}" if st.present else "[red]MISSING[/]"
                table.add_row(st.spec.path, st.spec.needed_for, status, "" if st.present else st.spec.source)
        console.print(table)
        if root is not None and all(s.present for s in check_task(task, root, "score")):
            try:
                console.print(f"  {len(task.load(root))} samples")
            except HarnessError as exc:
                missing += 1
                console.print(f"  [red]cannot load:[/] {exc}")
    if root is None:
        console.print("check a root with: python -m harness data --data-root DIR")
    return 1 if missing else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _cmd_run(args, argv)
        if args.command == "score":
            return _cmd_score(args, argv)
        if args.command in ("compare", "gate", "plan"):
            from harness.stats_cli import dispatch

            return dispatch(args, argv)
        if args.command == "leaderboard":
            from harness.board import run_leaderboard

            return run_leaderboard(args)
        if args.command == "report":
            from harness.report import run_report

            return run_report(args)
        if args.command == "import":
            from harness.importers.command import run_import

            return run_import(args, argv)
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "export":
            return _cmd_export(args)
        if args.command == "serve":
            return _cmd_serve(args)
        if args.command == "convert":
            return _cmd_convert(args)
        return _cmd_data_dispatch(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; run the same command again to resume", file=sys.stderr)
        return 130
