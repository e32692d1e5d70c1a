"""``qwen-magics serve``: the local DashScope emulator as a server of its own."""

from __future__ import annotations

import argparse
import sys
import time
import warnings

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qwen-magics", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the local DashScope emulator")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    serve.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    serve.add_argument("--key", default=None, help="accept only this API key (default: any key)")
    serve.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    serve.add_argument(
        "--tokens-per-second", type=float, default=0.0, help="stream pace (0: as fast as possible)"
    )
    serve.add_argument(
        "--generator",
        choices=["lm", "simple"],
        default="lm",
        help="lm: the offline language model; simple: fixed deterministic text",
    )
    serve.add_argument(
        "--dialect",
        choices=["dashscope", "vllm", "openai"],
        default="dashscope",
        help="play DashScope (enable_thinking), vLLM (chat_template_kwargs) or a strict OpenAI-style server",
    )
    args = parser.parse_args(argv)

    from .emulator import Emulator

    emu = Emulator(
        args.host,
        args.port,
        api_key=args.key,
        latency=args.latency,
        token_delay=1.0 / args.tokens_per_second if args.tokens_per_second else 0.0,
        generator=args.generator,
        dialect=args.dialect,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning about the address is printed below, once
        emu.start()
    print(f"qwen-magics emulator on {emu.base_url}", flush=True)
    if not emu.is_loopback:
        print(
            f"warning: bound to {args.host}, not loopback: other machines can reach it",
            file=sys.stderr,
            flush=True,
        )
    print("set DASHSCOPE_BASE_URL to that address; stop with Ctrl-C", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
