"""``harness serve``: an OpenAI-compatible chat-completions server over any model adapter."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from harness.cli.flags import positive
from harness.data.demo import DEMO_MODEL_SPEC
from harness.errors import UsageError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="serve a model behind an OpenAI-compatible chat-completions API")
    serve.add_argument("--model", default=DEMO_MODEL_SPEC, help="ADAPTER:TARGET, e.g. tinyllava:/ckpt (default: demo)")
    serve.add_argument("--model-args", default=None, help="adapter options k=v,k=v")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="0: any free port (the URL is printed)")
    serve.add_argument("--batch-size", type=positive, default=8, help="most requests answered in one generate call")
    serve.add_argument("--batch-wait-ms", type=float, default=5.0, help="how long a batch waits for more requests")
    serve.add_argument("--served-model-name", default=None, help="the model id clients see (default: the model's name)")
    serve.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: cuda when available)")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--verbose", action="store_true", help="log every request to stderr")
    serve.set_defaults(handler=main)


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.adapter import check_device
    from harness.serve.server import ServeOptions, serve

    check_device(args.device)

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
