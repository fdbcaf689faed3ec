"""``harness run``: run tasks on a model.

lmms-eval's spellings work too (``--model_args``, ``--batch_size``, ``--output_path``, ``--log_samples``,
``--gen_kwargs``, ``--tasks list``, ``--include_path``, ``--config``), so its users can keep their commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.cli.flags import DEFAULT_OUTPUT, add_judge_flags, judge_options, positive, shard
from harness.errors import UsageError

# lmms-eval's --gen_kwargs keys this harness can honour, and values of others that mean what it does anyway.
GEN_KWARGS = ("max_new_tokens", "temperature", "do_sample")
NO_OP_GEN_KWARGS = {"top_p": 1.0, "num_beams": 1, "top_k": 0}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run tasks on a model")
    run.add_argument("--tasks", default=None,
                     help="comma-separated task names (see `harness list`); `--tasks list` prints them")  # fmt: skip
    run.add_argument("--model", default=None, help="ADAPTER:TARGET, e.g. tinyllava:/ckpt (default: demo)")
    run.add_argument("--model-args", "--model_args", dest="model_args", default=None,
                     help="adapter options k=v,k=v (e.g. conv=phi,dtype=float32)")  # fmt: skip
    run.add_argument("--batch-size", "--batch_size", dest="batch_size", type=positive, default=16)
    run.add_argument("--limit", type=positive, default=None,
                     help="a fixed stratified subset of about N samples per task (the same ids every run)")
    run.add_argument(
        "--data-root", default=None, help="LLaVA eval layout root (default: $HARNESS_DATA_ROOT, else demo data)"
    )
    run.add_argument("--output-dir", "--output_path", dest="output_dir", default=DEFAULT_OUTPUT,
                     help="results root (run dirs, cache, store)")  # fmt: skip
    run.add_argument("--store", default=None, help="results store URL (default: sqlite in --output-dir)")
    run.add_argument("--protocol", default="llava15", help="a shipped protocol name or a protocol .toml file")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: cuda when available)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--num-workers", type=int, default=None, help="DataLoader workers for image decoding")
    run.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("--shard", type=shard, default=None, metavar="I/N",
                     help="answer only every N-th batch from I (no launcher needed); `harness merge` joins the parts")
    run.add_argument("--no-judge", action="store_true",
                     help="judged tasks: generate and keep the answers without scoring (score later with --judge)")
    lmms = run.add_argument_group("lmms-eval spellings")
    lmms.add_argument("--log_samples", "--log-samples", dest="log_samples", action="store_true",
                      help="accepted; samples logs are always written")  # fmt: skip
    lmms.add_argument("--gen_kwargs", "--gen-kwargs", dest="gen_kwargs", default=None, metavar="K=V,...",
                      help="max_new_tokens, temperature, do_sample: override the protocol's generation settings")
    lmms.add_argument("--include_path", "--include-path", dest="include_path", action="append", default=None,
                      metavar="DIR", help="a folder of task plugins: each .py file in it is imported")  # fmt: skip
    lmms.add_argument("--config", default=None, metavar="FILE.yaml",
                      help="flags from a YAML mapping (keys as the flags, either spelling); command-line flags win")
    run.add_argument("--log-to", dest="log_to", action="append", default=None, metavar="TRACKER",
                     help="also log the finished run to mlflow[:URI] or wandb[:PROJECT] (repeatable; extra: trackers)")
    add_judge_flags(run)
    run.set_defaults(handler=main, on_interrupt="finished work is saved; run the same command again to resume")


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.config:
        args = _with_config(args.config, argv)
    for folder in args.include_path or []:
        from harness.registry import include_tasks

        include_tasks(folder)
    if args.tasks is None:
        raise UsageError("run needs --tasks NAME[,NAME] (or `tasks:` in --config); `--tasks list` lists them")
    if args.tasks.strip() == "list":
        from harness.registry import task_names

        sys.stdout.write("\n".join(task_names()) + "\n")
        return 0
    if args.log_samples:
        print("note: --log_samples is always on here: each task's samples log is <run dir>/samples/TASK.jsonl",
              file=sys.stderr)  # fmt: skip

    from harness.adapter import check_device
    from harness.data.demo import DEMO_MODEL_SPEC
    from harness.run.distributed import Distributed
    from harness.run.evaluate import RunOptions, run
    from harness.run.runner import default_num_workers

    check_device(args.device)
    from harness.results.trackers import log_finished, parse_log_to

    trackers = parse_log_to(args.log_to)
    protocol = args.protocol
    if args.gen_kwargs:
        protocol = str(gen_kwargs_protocol(args.protocol, args.gen_kwargs, args.tasks, Path(args.output_dir)))
    options = RunOptions(
        tasks=args.tasks,
        model=args.model or DEMO_MODEL_SPEC,
        model_args=args.model_args,
        batch_size=args.batch_size,
        limit=args.limit,
        data_root=args.data_root,
        output_dir=args.output_dir,
        protocol=protocol,
        device=args.device,
        seed=args.seed,
        num_workers=default_num_workers() if args.num_workers is None else max(0, args.num_workers),
        store=args.store,
        use_cache=not args.no_cache,
        show_progress=not args.no_progress,
        judge=judge_options(args),
        no_judge=args.no_judge,
        shard=args.shard,
        argv=list(argv),
    )
    log_finished(trackers, run(options, dist=Distributed.from_env()))
    return 0


def _run_parser() -> argparse.ArgumentParser:
    """A fresh ``run`` parser (to parse the command line again over a config file's values)."""
    from harness.cli import Parser

    top = Parser(prog="harness")
    sub = top.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    return sub.choices["run"]  # type: ignore[no-any-return]


def _with_config(path: str, argv: Sequence[str]) -> argparse.Namespace:
    """The flags of a YAML file as defaults, then the command line parsed over them (its flags win)."""
    try:
        import yaml
    except ImportError as exc:
        raise UsageError("--config needs PyYAML: pip install pyyaml") from exc
    try:
        data = yaml.safe_load(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--config {path}: cannot read it ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"--config {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--config {path}: malformed YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a mapping of flag names to values, got {type(data).__name__}")
    parser = _run_parser()
    by_flag = {opt: action for action in parser._actions for opt in action.option_strings}
    defaults: dict[str, Any] = {}
    for key, value in data.items():
        action = by_flag.get(f"--{key}") or by_flag.get(f"--{str(key).replace('_', '-')}")
        if action is None or action.dest in ("help", "config"):
            from harness.registry import did_you_mean

            flags = sorted({o[2:] for o in by_flag if o.startswith("--")} - {"help", "config"})
            raise UsageError(f"--config {path}: unknown flag '{key}'{did_you_mean(str(key), flags)}")
        defaults[action.dest] = _config_value(action, key, value, path)
    parser.set_defaults(**defaults)
    words = list(argv)
    return parser.parse_args(words[words.index("run") + 1:] if "run" in words else words)


def _config_value(action: argparse.Action, key: object, value: Any, path: str) -> Any:
    """A YAML value as the flag would give it: lists joined by commas, strings through the flag's type."""
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if isinstance(value, dict):
        value = ",".join(f"{k}={v}" for k, v in value.items())
    if action.nargs == 0:  # store_true
        if not isinstance(value, bool):
            raise UsageError(f"--config {path}: '{key}' is a switch: true or false, got {value!r}")
        return value
    if action.type is not None and value is not None:
        try:
            value = action.type(str(value))  # type: ignore[operator]
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise UsageError(f"--config {path}: '{key}': {exc}") from exc
    elif value is not None and not isinstance(value, str):
        value = str(value)
    return [value] if action.dest == "include_path" and value is not None else value


def parse_gen_kwargs(text: str) -> dict[str, Any]:
    """lmms-eval's ``--gen_kwargs`` as protocol settings; a key this harness cannot honour is one error."""
    settings: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, raw = (s.strip() for s in part.partition("="))
        if not sep or not key:
            raise UsageError(f"--gen_kwargs entry '{part}' is not KEY=VALUE")
        try:
            if key == "max_new_tokens":
                settings["max_new_tokens"] = int(raw)
                if settings["max_new_tokens"] < 1:
                    raise ValueError
            elif key == "temperature":
                settings["temperature"] = float(raw)
                if settings["temperature"] < 0:
                    raise ValueError
            elif key == "do_sample":
                if raw.lower() not in ("true", "false"):
                    raise ValueError
                settings["do_sample"] = raw.lower() == "true"
            elif key in NO_OP_GEN_KWARGS:
                if float(raw) != NO_OP_GEN_KWARGS[key]:
                    raise UsageError(f"--gen_kwargs {key}={raw} is not supported (only {key}="
                                     f"{NO_OP_GEN_KWARGS[key]:g}, what this harness does); supported: "
                                     f"{', '.join(GEN_KWARGS)}")  # fmt: skip
            else:
                from harness.registry import did_you_mean

                known = [*GEN_KWARGS, *NO_OP_GEN_KWARGS]
                raise UsageError(f"--gen_kwargs key '{key}'{did_you_mean(key, known)} is not supported; "
                                 f"supported: {', '.join(GEN_KWARGS)}")  # fmt: skip
        except ValueError:
            raise UsageError(f"--gen_kwargs {key}={raw}: not a valid value") from None
    sample = settings.pop("do_sample", None)
    if sample is False:
        if settings.get("temperature", 0) != 0:
            raise UsageError("--gen_kwargs do_sample=false contradicts temperature > 0")
        settings["temperature"] = 0.0
    elif sample is True and not settings.get("temperature"):
        raise UsageError("--gen_kwargs do_sample=true needs temperature > 0")
    return settings


def gen_kwargs_protocol(protocol: str, gen_kwargs: str, tasks: str, output_dir: Path) -> Path:
    """A protocol file: ``protocol`` with ``--gen_kwargs`` over every task's generation settings, written under
    ``output_dir/protocols/`` so that the run records (and can be repeated with) exactly what it used."""
    import hashlib
    import json

    from harness.protocol import load_protocol
    from harness.registry import get_tasks

    overrides = parse_gen_kwargs(gen_kwargs)
    base = load_protocol(protocol)
    tables = {name: {**table, **overrides} for name, table in base.tasks.items()}
    for task in get_tasks(tasks):  # plugin tasks that carry their own settings for this protocol
        if task.name not in tables and base.name in task.default_settings:
            tables[task.name] = dict(overrides)
    said = ", ".join(f"{k}={v}" for k, v in overrides.items())
    lines = [f"name = {json.dumps(base.name)}", f"version = {json.dumps(base.version)}",
             f"description = {json.dumps(f'{base.description} (--gen_kwargs {said})')}"]  # fmt: skip
    if base.defaults:
        lines += ["", "[defaults]", *(f"{k} = {json.dumps(v)}" for k, v in base.defaults.items())]
    for name, table in tables.items():
        lines += ["", f"[tasks.{json.dumps(name)}]", *(f"{k} = {json.dumps(v)}" for k, v in table.items())]
    text = "\n".join(lines) + "\n"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    path = output_dir / "protocols" / f"{base.name}-gen-{digest}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
