"""Evaluate a checkpoint.

  python scripts/evaluate.py gan --checkpoint DIR --metric fid --num 50000 --ref stats.npz [--json FILE]
  python scripts/evaluate.py restore --degradation noise --checkpoint DIR --data photos [--json FILE]

`gan`: FID, KID and Inception Score as pytorch-fid computes them (FID Inception weights given by
--inception-weights or $JAXGAN_INCEPTION_WEIGHTS; never downloaded), and download-free digits metrics.
`restore`: PSNR and SSIM of the restorer against classical baselines on degraded held-out images.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    # --- gan: owned by the evaluation module (jaxgan/metrics) ---
    gan = commands.add_parser("gan", help="FID / KID / IS / digits metrics of a generator")
    gan.add_argument("--checkpoint", help="training workdir or converted generator folder")
    gan.add_argument("--metric", action="append", required=True,
                     choices=("fid", "kid", "is", "digits-fid", "digits-kid", "digits-is", "modes"),
                     help="repeat for several metrics")
    gan.add_argument("--num", type=int, default=10_000, help="images to generate")
    gan.add_argument("--ref", help="reference statistics .npz (pytorch-fid's mu/sigma)")
    gan.add_argument("--data", help="reference images: a folder or a built-in data set")
    gan.add_argument("--save-stats", help="write the reference statistics of --data to this .npz and stop")
    gan.add_argument("--inception-weights", help="pt_inception-2015-12-05 .pth (or $JAXGAN_INCEPTION_WEIGHTS)")
    gan.add_argument("--batch-size", type=int, default=200)
    gan.add_argument("--seed", type=int, default=0)
    gan.add_argument("--no-ema", action="store_true", help="the live generator instead of its EMA")
    gan.add_argument("--batch-stats", action="store_true", help="BatchNorm in train mode (per-batch statistics)")
    gan.add_argument("--json", help="also write the results to this JSON file")

    # --- restore: owned by the restoration module (jaxgan/restoration) ---
    restore = commands.add_parser("restore", help="PSNR / SSIM of a restorer against classical baselines")
    restore.add_argument("--degradation", required=True)
    restore.add_argument("--checkpoint", help="restorer workdir (omit to measure only the baselines)")
    restore.add_argument("--data", default="photos", help="a folder or a built-in data set (held-out split)")
    restore.add_argument("--num-crops", type=int, default=200)
    restore.add_argument("--seed", type=int, default=0)
    restore.add_argument("--json", help="also write the results to this JSON file")

    args = parser.parse_args(argv)
    if args.command == "gan":
        from jaxgan.metrics.report import evaluate_gan as run
    else:
        from jaxgan.restoration.evaluate import evaluate_restoration as run
    options = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        run(**options)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
