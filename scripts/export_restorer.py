"""Ship a trained restorer: `python scripts/export_restorer.py WORKDIR NAME` writes
jaxgan/tasks/restore/pretrained/NAME.safetensors (then `scripts/restore.py --model NAME` uses
it)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from jaxgan.tasks.restore import pretrained

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workdir", help="a restorer's training workdir")
    parser.add_argument("name", choices=list(pretrained.DESCRIPTIONS))
    args = parser.parse_args(argv)
    path = pretrained.export(args.workdir, args.name)
    print(f"{args.name}: {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
