"""Prepare a data set once for fast training:
`python scripts/prepare_data.py SRC OUT --image-size S [--nc C]`.

SRC is a folder of images (png, jpg, webp, tiff, bmp; recursively; 8- or 16-bit) or built-in
`digits` (with --split) or `fake`. Each image is centre-cropped and resized exactly as training
does, and stored as raw uint8 in ArrayRecord shards under OUT with a prepared.json; then
`--config.data=OUT` trains from it, with the same batches as from SRC. Class subfolders (when no
image lies directly in SRC) are recorded as labels. Unreadable files are skipped, named and counted.
A killed preparation leaves nothing at OUT: run the same command again to resume it (other arguments
start it afresh).
"""

from __future__ import annotations

import argparse
import sys
import warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "src", metavar="SRC", help="a folder of images, or built-in 'digits' or 'fake'"
    )
    parser.add_argument(
        "out", metavar="OUT", help="the prepared set's folder (made; atomically, once complete)"
    )
    parser.add_argument(
        "--image-size", type=int, required=True, help="side S of the square examples"
    )
    parser.add_argument("--nc", type=int, default=3, choices=(1, 3), help="channels (default 3)")
    parser.add_argument(
        "--num-shards", type=int, help="ArrayRecord files (default: about 256 MiB each)"
    )
    parser.add_argument(
        "--split", default="train", choices=("train", "test", "all"), help="of built-in digits"
    )
    parser.add_argument("--threads", type=int, help="decoding threads (default: the CPU count)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing OUT (once the new set is complete)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.image_size < 1 or (args.num_shards is not None and args.num_shards < 1):
        parser.error("--image-size and --num-shards must be positive")
    from tqdm import tqdm

    from jaxgan.data.images import ImageError
    from jaxgan.data.prepared import PreparedDataError, prepare

    def show(
        message, category, filename, lineno, file=None, line=None
    ) -> None:  # keeps the progress bar intact
        tqdm.write(f"warning: {message}", file=sys.stderr)

    shown, warnings.showwarning = warnings.showwarning, show
    try:
        prepare(
            args.src,
            args.out,
            args.image_size,
            args.nc,
            args.num_shards,
            args.split,
            args.force,
            args.threads,
            progress=not args.quiet,
            log=lambda line: tqdm.write(line, file=sys.stderr),
        )
    except (PreparedDataError, ImageError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown
    return 0


if __name__ == "__main__":
    sys.exit(main())
