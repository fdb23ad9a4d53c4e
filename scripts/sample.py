"""Generate images: `python scripts/sample.py --checkpoint DIR --out PATH [--latents z.npy | --num N --seed S]`.

DIR is a converted generator (scripts/convert.py torch2jax) or a training workdir (its latest
checkpoint; the EMA generator when the run keeps one). PATH ending in .png: one grid; .npy: a float32
NHWC array in [-1, 1]; anything else: a folder with one PNG per image, written batch by batch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="converted generator folder or training workdir")
    parser.add_argument("--out", required=True, help="grid .png, array .npy, or a folder for one PNG per image")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--latents", help=".npy of shape (N, nz) or (N, nz, 1, 1)")
    source.add_argument("--num", type=int, default=64, help="images to generate from --seed (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-stats", action="store_true",
                        help="BatchNorm with each batch's statistics (train mode), as pytorch/examples' grids")
    parser.add_argument("--no-ema", action="store_true", help="from a workdir: the live generator, not its EMA")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    args = parser.parse_args(argv)

    import numpy as np
    from tqdm import tqdm

    from jaxgan.atomic import atomic_path, check_writable
    from jaxgan.checkpoint import CheckpointError
    from jaxgan.data.order import sample_latents
    from jaxgan.monitor import image_grid, save_png
    from jaxgan.sampling import iterate_generate, load_generator

    out = Path(args.out)
    try:
        check_writable(out, args.force)
        arch, variables = load_generator(args.checkpoint, use_ema=not args.no_ema)
        latents = np.load(args.latents) if args.latents else sample_latents(args.seed, args.num, arch["nz"])
        batches = iterate_generate(arch, variables, latents, args.batch_size, args.batch_stats)
        if out.suffix == ".png":
            save_png(image_grid(np.concatenate(list(batches))), out)
        elif out.suffix == ".npy":
            with atomic_path(out) as temporary, open(temporary, "wb") as handle:
                np.save(handle, np.concatenate(list(batches)).astype(np.float32))
        else:
            with atomic_path(out, directory=True) as folder:
                index = 0
                for batch in tqdm(batches, total=-(-len(latents) // args.batch_size), unit="batch"):
                    for image in batch:
                        save_png(image_grid(image[None], padding=0), folder / f"{index:06d}.png")
                        index += 1
    except (CheckpointError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(latents)} image(s) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
