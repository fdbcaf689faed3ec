"""``python -m training STAGE [--recipe FILE] [overrides]``.

STAGE is pretrain, finetune, share, lora, qlora (the recipe of that name unless ``--recipe`` names another
file) or demo (the demo model; also ``--scenes N``). Overrides set any recipe field: ``--set key=value``,
``--key value`` or ``--key=value``. ``python -m training fields`` lists the fields. A bad recipe stops with a
one-line error before anything is loaded. ``--help`` (or ``-h``) works after any stage; ``--no-progress``
turns off the progress bar (step, ETA, tokens/s, loss).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

STAGES = ("pretrain", "finetune", "share", "lora", "qlora", "demo")
USAGE = (
    "usage: python -m training {pretrain,finetune,share,lora,qlora,demo} [--recipe FILE] [--no-progress] "
    "[--set key=value | --key value ...]\n       python -m training demo [--scenes N] [--output_dir DIR] ...\n"
    "       python -m training fields\n       python -m training STAGE --help"
)
HELP_FLAGS = ("-h", "--help")


def stage_help(stage: str) -> str:
    """``python -m training STAGE --help``: what the stage does, its options and every recipe field."""
    from training.recipe import RecipeError, field_help, recipe_path

    if stage == "fields":
        return "usage: python -m training fields\n\nLists every recipe field with its type and default."
    try:
        path = recipe_path(stage)
        about = [line[2:] for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# ")]
    except (RecipeError, OSError):
        path, about = None, []
    lines = [f"usage: python -m training {stage} [--recipe FILE] [--no-progress] [--set key=value | --key value ...]"]
    if stage == "demo":
        lines[0] = "usage: python -m training demo [--scenes N] [--output_dir DIR] [--no-progress] [--key value ...]"
    lines += ["", *about]
    lines += ["", "options:", "  -h, --help            this help"]
    if stage != "demo":
        default = path or f"training/recipes/{stage}.yaml"
        lines.append(f"  --recipe FILE         a recipe YAML file (default: {default})")
    else:
        lines += [
            "  --scenes N            synthetic training scenes (default: the recipe's 6000)",
            "  --output_dir DIR      where the checkpoint goes (default: output/demo_checkpoint; never the shipped",
            "                        model_adapters/demo_checkpoint)",
        ]
    lines += [
        "  --no-progress         no progress bar (step, ETA, tokens/s, loss) on stderr",
        "  --set key=value, --key value, --key=value",
        "                        override any recipe field (values read as YAML)",
        "",
        "recipe fields:",
        field_help(),
    ]
    return "\n".join(lines)


def take_option(args: list[str], flag: str) -> str | None:
    """Remove ``flag VALUE`` or ``flag=VALUE`` from ``args`` and return the value (None when absent)."""
    for i, arg in enumerate(args):
        if arg == flag:
            if i + 1 >= len(args):
                raise SystemExit(f"error: {flag} needs a value")
            value = args[i + 1]
            del args[i : i + 2]
            return value
        if arg.startswith(flag + "="):
            del args[i]
            return arg.split("=", 1)[1]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in HELP_FLAGS:
        print(USAGE)
        return 0 if args else 2
    stage, rest = args[0], args[1:]
    if stage not in (*STAGES, "fields"):
        print(f"error: unknown stage '{stage}'\n{USAGE}", file=sys.stderr)
        return 2
    if any(arg in HELP_FLAGS for arg in rest):
        print(stage_help(stage))
        return 0
    from training.recipe import RecipeError, field_help, load_recipe, parse_overrides

    if stage == "fields":
        print("recipe fields (set with --key value or --set key=value):\n" + field_help())
        return 0
    progress = "--no-progress" not in rest
    rest = [arg for arg in rest if arg != "--no-progress"]
    try:
        recipe_name = take_option(rest, "--recipe") or stage
        if stage == "demo":
            scenes = int(take_option(rest, "--scenes") or 0)
            overrides = parse_overrides(rest)
        else:
            recipe = load_recipe(recipe_name, rest)
    except (RecipeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    callbacks = []
    if progress:
        from training.progress import ProgressBar

        callbacks.append(ProgressBar())
    if stage == "demo":
        from training.demo import N_SCENES, run_demo

        try:
            run_demo(overrides, n_scenes=scenes or N_SCENES, callbacks=callbacks)
        except RecipeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    from training.train import train

    outcome = train(recipe, callbacks=callbacks)
    print(f"saved {outcome.output_dir} after {outcome.global_step} steps ({outcome.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
