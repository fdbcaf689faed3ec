"""``python -m training STAGE [--recipe FILE] [overrides]``.

STAGE is pretrain, finetune, share, lora, qlora (the recipe of that name unless ``--recipe`` names another
file) or demo (the demo model; also ``--scenes N``). Overrides set any recipe field: ``--set key=value``,
``--key value`` or ``--key=value``. ``python -m training fields`` lists the fields. A bad recipe stops with a
one-line error before anything is loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

STAGES = ("pretrain", "finetune", "share", "lora", "qlora", "demo")
USAGE = (
    "usage: python -m training {pretrain,finetune,share,lora,qlora,demo} [--recipe FILE] [--set key=value | "
    "--key value ...]\n       python -m training fields"
)


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
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    stage, rest = args[0], args[1:]
    from training.recipe import RecipeError, field_help, load_recipe, parse_overrides

    if stage == "fields":
        print("recipe fields (set with --key value or --set key=value):\n" + field_help())
        return 0
    if stage not in STAGES:
        print(f"error: unknown stage '{stage}'\n{USAGE}", file=sys.stderr)
        return 2
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
    if stage == "demo":
        from training.demo import N_SCENES, run_demo

        try:
            run_demo(overrides, n_scenes=scenes or N_SCENES)
        except RecipeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    from training.train import train

    outcome = train(recipe)
    print(f"saved {outcome.output_dir} after {outcome.global_step} steps ({outcome.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
