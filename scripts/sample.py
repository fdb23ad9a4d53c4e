"""Generate images: `python scripts/sample.py --checkpoint DIR --out PATH
    [--latents z.npy | --num N --seed S]`.

DIR is a converted generator (scripts/convert.py torch2jax) or a training workdir (its latest
checkpoint; the EMA generator when the run keeps one). PATH ending in .png: one grid; .npy: a
float32 NHWC array in [-1, 1]; anything else: a folder with one PNG per image, written batch by
batch, each file atomically. A failed or killed run keeps the images it wrote: rerun the same
command to write the rest (the folder's .jaxgan-output.json records the job; other arguments need
--force, which replaces the files in place and removes the old output's extra files only once the
new one is complete). A class-conditional generator draws `--class K`, or by default one row per
class (num // classes images each).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def generate_batches(
    arch: dict[str, Any],
    variables: Any,
    latents: np.ndarray,
    batch_size: int,
    batch_stats: bool,
    starts: Iterable[int],
    labels: np.ndarray | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(start, images) for those batches of `latents` that begin at `starts`: the images of a run
    over all of them, so skipping finished batches never changes the others."""
    from jaxgan.sampling import iterate_generate

    starts = list(starts)
    return zip(
        starts,
        iterate_generate(
            arch, variables, latents, batch_size, batch_stats, starts=starts, labels=labels
        ),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", required=True, help="converted generator folder or training workdir"
    )
    parser.add_argument(
        "--out", required=True, help="grid .png, array .npy, or a folder for one PNG per image"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--latents", help=".npy of shape (N, nz) or (N, nz, 1, 1)")
    source.add_argument(
        "--num", type=int, default=64, help="images to generate from --seed (default 64)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--class",
        dest="label",
        type=int,
        help="a class-conditional generator: draw this class (default: one grid row per class)",
    )
    parser.add_argument(
        "--batch-stats",
        action="store_true",
        help="BatchNorm with each batch's statistics (train mode), as pytorch/examples' grids",
    )
    parser.add_argument(
        "--no-ema", action="store_true", help="from a workdir: the live generator, not its EMA"
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out (a folder of another job: file by file, in place)",
    )
    args = parser.parse_args(argv)

    import numpy as np

    from jaxgan import monitor
    from jaxgan.atomic import atomic_path, check_writable
    from jaxgan.checkpoint import CheckpointError
    from jaxgan.data.order import sample_latents
    from jaxgan.sampling import iterate_generate, load_generator

    out = Path(args.out)
    folder_output = out.suffix not in (".png", ".npy")
    try:
        if not folder_output:
            check_writable(out, args.force)
        arch, variables = load_generator(args.checkpoint, use_ema=not args.no_ema)
        latents = (
            np.load(args.latents)
            if args.latents
            else sample_latents(args.seed, args.num, arch["nz"])
        )
        latents, labels, columns = requested_classes(arch, latents, args)
        if folder_output:
            report = write_folder(out, args, arch, variables, latents, labels)
        else:
            batches = iterate_generate(
                arch, variables, latents, args.batch_size, args.batch_stats, labels=labels
            )
            if out.suffix == ".png":
                grid = monitor.image_grid(np.concatenate(list(batches)), columns)
                monitor.save_png(grid, out)
            else:
                with atomic_path(out) as temporary, open(temporary, "wb") as handle:
                    np.save(handle, np.concatenate(list(batches)).astype(np.float32))
            report = f"wrote {len(latents)} image(s) to {out}"
    except (CheckpointError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report)
    return 0


def requested_classes(
    arch: dict[str, Any], latents: np.ndarray, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """(latents, labels, grid columns): `--class K` for every image, or for a conditional generator
    without it one grid row per class; an unconditional generator takes no class."""
    import numpy as np

    from jaxgan.sampling import check_labels, class_rows

    classes = arch.get("num_classes", 0)
    if args.label is not None:
        labels = np.full(len(latents), args.label, np.int32)
        return latents, check_labels(arch, labels, len(latents)), None
    if not classes:
        return latents, None, None
    if args.latents:
        raise ValueError(
            f"this generator is class-conditional ({classes} classes): with --latents give "
            f"--class 0..{classes - 1}"
        )
    labels = class_rows(classes, len(latents))
    return latents[: len(labels)], labels, len(labels) // classes


def write_folder(
    out: Path,
    args: argparse.Namespace,
    arch: dict[str, Any],
    variables: Any,
    latents: np.ndarray,
    labels: np.ndarray | None = None,
) -> str:
    """One PNG per image into `out`, each atomically; a rerun of the same job skips the complete
    files (and the batches whose images are all there), so an interrupted run loses nothing. Returns
    the closing line."""
    from tqdm import tqdm

    from jaxgan import monitor
    from jaxgan.atomic import OutputFolder, digest

    job = {
        "tool": "sample",
        "checkpoint": str(Path(args.checkpoint).resolve()),
        "weights": digest(arch, variables),
        "ema": not args.no_ema,
        "batch_stats": args.batch_stats,
        "batch_size": args.batch_size,
    }
    if labels is not None:
        job["labels_digest"] = digest(labels)
    if args.latents:
        job.update(latents=str(Path(args.latents).resolve()), latents_digest=digest(latents))
    else:
        job.update(num=args.num, seed=args.seed)
    names = [f"{index:06d}.png" for index in range(len(latents))]
    folder = OutputFolder(out, job, names, force=args.force)
    if folder.skipped:
        print(folder.summary())
    size = max(1, min(args.batch_size, len(latents)))
    starts = [
        start
        for start in range(0, len(latents), size)
        if any(name not in folder.complete for name in names[start : start + size])
    ]
    written = 0
    batches = generate_batches(
        arch, variables, latents, args.batch_size, args.batch_stats, starts, labels=labels
    )
    for start, images in tqdm(batches, total=len(starts), unit="batch"):
        done = []
        for offset, image in enumerate(images):
            name = names[start + offset]
            if name not in folder.complete:  # a batch cut short: only its missing images
                monitor.save_png(monitor.image_grid(image[None], padding=0), folder.target(name))
                done.append(name)
        folder.wrote(done)
        written += len(done)
    removed = folder.finish()
    report = f"wrote {written:,} image(s) to {out}" + (
        f" ({folder.skipped:,} already there)" if folder.skipped else ""
    )
    return report + (f"; removed {removed:,} file(s) of the old output" if removed else "")


if __name__ == "__main__":
    sys.exit(main())
