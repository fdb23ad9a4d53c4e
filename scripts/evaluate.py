"""Evaluate a checkpoint.

  python scripts/evaluate.py gan --checkpoint DIR --metric fid --num 50000 --ref stats.npz
      [--json FILE]
  python scripts/evaluate.py restore --degradation noise --checkpoint DIR --data photos
      [--json FILE]

`gan`: FID, KID and Inception Score as pytorch-fid computes them (FID Inception weights given by
--inception-weights or $JAXGAN_INCEPTION_WEIGHTS; never downloaded), and download-free digits
metrics.
`restore`: PSNR and SSIM of the restorer against classical baselines on degraded held-out images.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    # --- gan: owned by the evaluation module (jaxgan/metrics) ---
    gan = commands.add_parser("gan", help="FID / KID / IS / digits metrics of a generator")
    gan.add_argument("--checkpoint", help="training workdir or converted generator folder")
    gan.add_argument(
        "--metric",
        action="append",
        choices=(
            *("fid", "kid", "is", "prdc", "digits-fid", "digits-kid", "digits-is", "modes"),
            *("digits-prdc", "digits-memorisation", "digits-class-agreement"),
        ),
        help="repeat for several metrics; digits-* and modes compare with the built-in digits; "
        "prdc: precision and recall (k = 3), density and coverage (k = 5); digits-memorisation: "
        "median distance of generated digits to their nearest training digit over that of "
        "held-out digits (well below 1: copies); digits-class-agreement: a class-conditional "
        "generator's share of digits the shipped classifier calls the class asked for",
    )
    gan.add_argument("--num", type=int, default=10_000, help="images to generate")
    gan.add_argument(
        "--ref", help="reference statistics .npz (pytorch-fid's mu/sigma; --save-stats writes one)"
    )
    gan.add_argument(
        "--data",
        help="reference images for fid/kid: a folder, or 'digits'/'photos' (training split)",
    )
    gan.add_argument(
        "--save-stats",
        help="write the Inception statistics of --data to this .npz and stop "
        "(with --metric kid or prdc also the features)",
    )
    gan.add_argument(
        "--inception-weights",
        help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
        "(default: $JAXGAN_INCEPTION_WEIGHTS); never downloaded",
    )
    gan.add_argument(
        "--batch-size", type=int, default=200, help="images generated and measured at once"
    )
    gan.add_argument("--seed", type=int, default=0, help="seed of the latents")
    gan.add_argument("--no-ema", action="store_true", help="the live generator instead of its EMA")
    gan.add_argument(
        "--batch-stats", action="store_true", help="BatchNorm in train mode (per-batch statistics)"
    )
    gan.add_argument("--json", help="also write the results to this JSON file")

    # --- restore: owned by the restoration module (jaxgan/tasks/restore) ---
    restore = commands.add_parser(
        "restore", help="PSNR / SSIM of a restorer against classical baselines"
    )
    restore.add_argument(
        "--degradation",
        required=True,
        choices=("centre_square", "random_boxes", "strokes", "noise", "downsample", "jpeg"),
    )
    restore.add_argument(
        "--checkpoint", help="restorer workdir or model folder (omit to measure only the baselines)"
    )
    restore.add_argument(
        "--model", help="a shipped restorer by name (scripts/restore.py --model list)"
    )
    restore.add_argument(
        "--split",
        choices=("validation", "test"),
        default="test",
        help="held-out split: validation for choices, test for tables",
    )
    restore.add_argument(
        "--ensemble", action="store_true", help="also the restorer's 8-fold self-ensemble"
    )
    restore.add_argument(
        "--nlm-strength",
        type=float,
        help="non-local means' h in units of sigma (default: the validation-chosen one per sigma)",
    )
    restore.add_argument(
        "--data",
        default="photos",
        help=(
            "held-out images: 'photos' (its test split: coffee, chelsea, rocket), "
            "'digits', a folder"
        ),
    )
    restore.add_argument(
        "--num-crops", type=int, default=200, help="held-out crops to degrade and restore"
    )
    restore.add_argument(
        "--seed", type=int, default=0, help="seed of the crops and of the degradation"
    )
    restore.add_argument(
        "--image-size", type=int, default=64, help="crop size without a checkpoint"
    )
    restore.add_argument("--nc", type=int, default=3, help="channels without a checkpoint")
    restore.add_argument(
        "--noise-sigma", type=float, default=25.0, help="without a workdir: noise sigma (0..255)"
    )
    restore.add_argument(
        "--scale-factor", type=int, default=4, help="without a workdir: downsampling factor"
    )
    restore.add_argument("--downsampler", choices=("bicubic", "area"), default="bicubic")
    restore.add_argument("--jpeg-quality", type=int, default=20)
    restore.add_argument(
        "--no-ema", dest="use_ema", action="store_false", help="the live restorer, not its EMA"
    )
    restore.add_argument(
        "--gan-prior", help="inpainting: also a GAN workdir (or converted generator) as prior"
    )
    restore.add_argument(
        "--discriminator", help="with --gan-prior: a converted discriminator folder"
    )
    restore.add_argument(
        "--gan-prior-steps", type=int, default=1000, help="Adam steps of the latent search"
    )
    restore.add_argument("--json", help="also write the results to this JSON file")

    args = parser.parse_args(argv)
    if args.command == "gan":
        from jaxgan.tasks.gan.benchmark import evaluate_gan as run
    else:
        from jaxgan.tasks.restore.benchmark import evaluate_restoration as run
    options = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        run(**options)
    except (FileNotFoundError, ValueError) as error:  # an unknown --model is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
