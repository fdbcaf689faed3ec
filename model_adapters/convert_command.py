"""``harness convert SRC DST``: contributed to the harness CLI through the ``harness.commands`` entry point."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def add_parsers(sub: argparse._SubParsersAction) -> None:
    convert = sub.add_parser("convert", help="write any TinyLLaVA checkpoint as a plain HF Llava checkpoint")
    convert.add_argument("src", help="checkpoint directory (legacy, Factory, projector-only, LoRA or HF Llava)")
    convert.add_argument("dst", help="output directory (new or empty)")
    convert.add_argument(
        "--model-args", default=None, help="base=PATH, tower=PATH, conv=NAME, dtype=..., image_aspect_ratio=..."
    )
    convert.add_argument(
        "--with-lm-head-bias", action="store_true",
        help="also write the head bias as the weight language_model.lm_head.bias (vLLM's Phi needs it; "
        "plain transformers ignores it)",
    )
    convert.set_defaults(handler=main)


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.registry import parse_model_args
    from model_adapters.convert import convert_checkpoint

    report = convert_checkpoint(args.src, args.dst, parse_model_args(args.model_args), args.with_lm_head_bias)
    print(f"converted {report.source_format} checkpoint to HF Llava: {report.destination} "
          f"(template {report.template}, image_aspect_ratio {report.image_aspect_ratio})")
    for line in report.warnings:
        print(line if line.startswith(" ") else f"warning: {line}")
    for line in report.notes:
        print(f"note: {line}")
    return 0
