"""Command line: `python -m pi05perf <subcommand> ...` (console script `pi05perf`).

Subcommands register themselves in SUBCOMMANDS: a function that adds its arguments to a
subparser and sets `func` (args -> exit code). Add a new one with `@subcommand(name, help)`.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from .config import MODELS

SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {}


def subcommand(name: str, help: str):
    def register(configure: Callable[[argparse.ArgumentParser], None]):
        SUBCOMMANDS[name] = (help, configure)
        return configure
    return register


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer (>= 1), got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer (>= 1), got {value}")
    return value


# ----------------------------------------------------------------------------- flops
@subcommand("flops", "analytic per-layer FLOPs and weight bytes of one stack")
def _configure_flops(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, choices=sorted(MODELS),
                   help="which stack: %(choices)s")
    p.add_argument("--tokens", type=positive_int, default=712,
                   help="query tokens (gemma_2b prefix: 712; siglip: 256 per image; expert: horizon)")
    p.add_argument("--kv-tokens", type=positive_int, default=None,
                   help="keys attended to (gemma_300m expert: prefix + horizon); default: --tokens")
    p.add_argument("--dtype-bytes", type=positive_int, default=2, help="bytes per weight (bf16: 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_flops)


def _run_flops(args: argparse.Namespace) -> int:
    from .flops import layer_ops

    cfg = MODELS[args.model]
    kv_tokens = args.tokens if args.kv_tokens is None else args.kv_tokens
    ops = layer_ops(cfg, args.tokens, kv_tokens, dtype_bytes=args.dtype_bytes)
    layer_flops = sum(o.flops for o in ops)
    layer_weights = sum(o.weight_bytes for o in ops)
    result = {
        "model": cfg.name,
        "tokens": args.tokens,
        "kv_tokens": kv_tokens,
        "ops": [{"name": o.name, "flops": o.flops, "weight_bytes": o.weight_bytes} for o in ops],
        "layers": cfg.depth,
        "total_flops": cfg.depth * layer_flops,
        "total_weight_bytes": cfg.depth * layer_weights,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{cfg.name}: {args.tokens} tokens attending to {kv_tokens}, one layer of {cfg.depth}")
    print(f"{'op':<16}{'GFLOP':>12}{'weight MB':>12}")
    for o in ops:
        print(f"{o.name:<16}{o.flops / 1e9:>12.3f}{o.weight_bytes / 1e6:>12.3f}")
    print(f"{'layer':<16}{layer_flops / 1e9:>12.3f}{layer_weights / 1e6:>12.3f}")
    print(f"{'x' + str(cfg.depth) + ' layers':<16}{result['total_flops'] / 1e9:>12.1f}"
          f"{result['total_weight_bytes'] / 1e6:>12.1f}")
    return 0


# ----------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pi05perf", description=__doc__.splitlines()[0])
    subs = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help, configure) in SUBCOMMANDS.items():
        configure(subs.add_parser(name, help=help, description=help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # the reader closed the pipe (`| head`): stop quietly; stdout goes to devnull so the
        # interpreter's final flush does not raise again
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
