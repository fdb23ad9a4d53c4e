"""Restore images: `python scripts/restore.py --model NAME --input PATH --out PATH [--mask PATH]`
(a shipped restorer; `--model list` prints them) or `--checkpoint DIR` (one you trained).

PATH is a file (png, jpg, tiff, npy; 8-bit, 16-bit or float; any size) or a folder, whose images are
restored into --out with the same relative names, each file atomically: a failed or killed run keeps
the images it restored, and rerunning the same command restores the rest (the folder's
.jaxgan-output.json records the job; other arguments need --force, which replaces the files in
place). The output keeps the input's size, bit depth and value range. --mask marks the pixels to
fill: 1 / white = missing (a file for every input, or a folder with a mask of the same relative
name, any image suffix); the other pixels are kept exactly.

  --method restorer (default): --model NAME, or DIR a restorer's training workdir or converted
    model folder; --ensemble averages the 8 flips and rotations (8x the time).
  --method gan-prior: DIR is a GAN workdir (G and D), or a converted generator with
    --discriminator DIR; latents z are searched so that G(z) matches the known pixels
    (Yeh et al. 2017), then blended in.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def find_mask(masks: Path, relative: Path) -> Path:
    """The mask for an input at `relative` inside a mask folder: the same relative path, any image
    suffix."""
    from jaxgan.tasks.restore.files import SUFFIXES

    for candidate in sorted((masks / relative).parent.glob(relative.stem + ".*")):
        if candidate.suffix.lower() in SUFFIXES:
            return candidate
    raise FileNotFoundError(
        f"no mask for {relative} in {masks} (expected {masks / relative.with_suffix('.png')})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", help="restorer (or, with --method gan-prior, GAN) folder")
    parser.add_argument(
        "--model", help="a shipped restorer by name instead of --checkpoint; 'list' prints them"
    )
    parser.add_argument("--input", help="an image file or a folder of images")
    parser.add_argument("--out", help="output file (for a file input) or folder")
    parser.add_argument(
        "--ensemble", action="store_true", help="average the 8 flips and rotations (8x the time)"
    )
    parser.add_argument("--mask", help="mask file or folder: 1 / white = missing")
    parser.add_argument("--method", choices=("restorer", "gan-prior"), default="restorer")
    parser.add_argument("--discriminator", help="gan-prior: a converted discriminator folder")
    parser.add_argument(
        "--range",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help="value range of float images (default 0 1); the output keeps it",
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=1,
        help="super-resolution: upsample by this factor first, as training did (bicubic); it must "
        "be the restorer's own factor",
    )
    parser.add_argument(
        "--overlap", type=int, help="tile overlap in pixels (default a quarter of the tile)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="tiles per device batch")
    parser.add_argument("--steps", type=int, default=1000, help="gan-prior: Adam steps over z")
    parser.add_argument(
        "--prior-weight", type=float, default=0.003, help="gan-prior: weight of D's term"
    )
    parser.add_argument(
        "--blend", choices=("poisson", "feather"), default="poisson", help="gan-prior blending"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="gan-prior: seed of the initial latents"
    )
    parser.add_argument(
        "--no-ema", action="store_true", help="from a workdir: the live model, not its EMA"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out (a folder of another job: file by file, in place)",
    )
    args = parser.parse_args(argv)
    if args.model == "list":
        from jaxgan.tasks.restore import pretrained

        print(pretrained.listing())
        return 0
    if (args.checkpoint is None) == (args.model is None):
        parser.error("give --checkpoint DIR or --model NAME (one of them)")
    if args.model and args.method != "restorer":
        parser.error("--model names a shipped restorer: it needs --method restorer")
    if not args.input or not args.out:
        parser.error("--input and --out are required")

    from jaxgan import cli

    cli.enable_compilation_cache()
    from jaxgan.atomic import OutputFolder, check_writable, digest
    from jaxgan.checkpoint import CheckpointError
    from jaxgan.data.images import ImageError
    from jaxgan.tasks.restore import files

    source, out = Path(args.input), Path(args.out)
    value_range = tuple(args.range) if args.range else None
    try:
        if not source.is_dir():
            check_writable(out, args.force)
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such file or folder")
        job = {
            "tool": "restore",
            "method": args.method,
            "checkpoint": str(Path(args.checkpoint).resolve()) if args.checkpoint else None,
            "model": args.model,
            "input": str(source.resolve()),
            "mask": str(Path(args.mask).resolve()) if args.mask else None,
            "ema": not args.no_ema,
            "range": value_range,
        }
        if args.method == "restorer":
            from jaxgan.tasks.restore.api import load_restorer, restore

            model = load_restorer(args.checkpoint, use_ema=not args.no_ema, model=args.model)
            job.update(
                weights=digest(model.arch, model.variables),
                scale=args.scale,
                overlap=args.overlap,
                batch_size=args.batch_size,
                ensemble=args.ensemble,
            )

            def run(path: Path, mask: Path | None):
                return restore(
                    path,
                    model,
                    mask,
                    value_range=value_range,
                    scale=args.scale,
                    overlap=args.overlap,
                    batch_size=args.batch_size,
                    ensemble=args.ensemble,
                )
        else:
            from jaxgan.tasks.restore.gan_prior import load_gan, restore_file

            prior = load_gan(args.checkpoint, args.discriminator, use_ema=not args.no_ema)
            job.update(
                weights=digest(
                    prior.generator_arch,
                    prior.generator_variables,
                    prior.discriminator_arch,
                    prior.discriminator_variables,
                ),
                discriminator=str(Path(args.discriminator).resolve())
                if args.discriminator
                else None,
                steps=args.steps,
                prior_weight=args.prior_weight,
                blend=args.blend,
                seed=args.seed,
            )

            def run(path: Path, mask: Path | None):
                if mask is None:
                    raise ValueError("the gan-prior method inpaints: give --mask (white = missing)")
                return restore_file(
                    path,
                    mask,
                    prior,
                    value_range=value_range,
                    steps=args.steps,
                    prior_weight=args.prior_weight,
                    blend=args.blend,
                    seed=args.seed,
                )

        mask_path = Path(args.mask) if args.mask else None
        if source.is_dir():
            inside = (
                out.resolve()
            )  # an output folder inside the input folder is not read as input (on a rerun)
            inputs = sorted(
                p
                for p in source.rglob("*")
                if p.is_file()
                and p.suffix.lower() in files.SUFFIXES
                and inside not in p.resolve().parents
            )
            if not inputs:
                raise ImageError(f"{source} holds no images ({', '.join(sorted(files.SUFFIXES))})")
            relatives = [path.relative_to(source) for path in inputs]
            masks = [
                find_mask(mask_path, relative) if mask_path and mask_path.is_dir() else mask_path
                for relative in relatives
            ]  # a missing mask is an error before any work
            folder = OutputFolder(
                out, job, [relative.as_posix() for relative in relatives], force=args.force
            )
            if folder.skipped:
                print(folder.summary())
            for path, relative, mask in zip(inputs, relatives, masks):
                if relative.as_posix() in folder.complete:
                    continue
                restored = run(path, mask)
                files.write_any(
                    folder.target(relative.as_posix()), restored
                )  # atomic: whole or absent
                folder.wrote([relative.as_posix()])
                print(f"restored {path} -> {out / relative}")
            removed = folder.finish()
            if removed:
                print(f"removed {removed:,} file(s) of the old output from {out}")
        else:
            files.read_any(source)  # a clear error for an unreadable input before any work
            files.write_any(out, run(source, mask_path))
            print(f"restored {source} -> {out}")
    except (CheckpointError, ImageError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
