"""Shared command-line plumbing for scripts/: `--config.FIELD=VALUE` flags and the compilation
cache."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from jaxgan import config as config_lib


def split_config_overrides(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Separate `--config.FIELD=VALUE` (or `--config.FIELD VALUE`) from the other arguments."""
    rest, overrides, i = [], {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--config."):
            name, has_value, value = arg[len("--config.") :].partition("=")
            if not has_value:
                if i + 1 >= len(argv):
                    raise SystemExit(f"error: {arg} needs a value (--config.{name}=VALUE)")
                value, i = argv[i + 1], i + 1
            overrides[name] = value
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


def add_config_flag(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument(
        "--config",
        default=default,
        required=default is None,
        help=f"a shipped config ({', '.join(config_lib.available())}) or a path to a .py file; "
        "override any field with --config.FIELD=VALUE",
    )


def load_config(parser: argparse.ArgumentParser, argv: list[str] | None = None):
    """Parse flags and load the config; config errors exit with the message (no traceback)."""
    rest, overrides = split_config_overrides(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(rest)
    try:
        return args, config_lib.load(args.config, overrides)
    except config_lib.ConfigError as error:
        parser.exit(2, f"error: {error}\n")


def enable_compilation_cache() -> None:
    """JAX's persistent compilation cache, so that a second run (or resume) skips compiling."""
    import jax

    directory = os.environ.get(
        "JAX_COMPILATION_CACHE_DIR", str(Path.home() / ".cache" / "jaxgan" / "xla")
    )
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
