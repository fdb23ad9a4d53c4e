"""Convert models, or whole training states, between PyTorch and jaxgan.

  python scripts/convert.py torch2jax --model generator weights.pth OUT_DIR
  python scripts/convert.py jax2torch --model generator MODEL_DIR_OR_WORKDIR
      weights.pth|.safetensors
  python scripts/convert.py state2torch WORKDIR run.pth
      # a training run -> torch_ref/train.py --resume
  python scripts/convert.py state2jax run.pth WORKDIR
      # a torch_ref checkpoint -> scripts/train.py --workdir

torch2jax / jax2torch move one model; the architecture (nc, widths, nz, image size) is read off the
tensors. state2torch / state2jax move a whole training state (both models, both Adam states, the
EMA, the step and data position, the config), so that the run continues in the other framework.
`.pth` files are read with `weights_only=True`; `.safetensors` needs no torch. Nothing is written on
failure, and an existing output is only replaced with --force.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    to_jax = commands.add_parser("torch2jax", help="a PyTorch state dict -> a jaxgan model folder")
    to_torch = commands.add_parser(
        "jax2torch", help="a jaxgan model folder or training workdir -> .pth/.safetensors"
    )
    for command in (to_jax, to_torch):
        command.add_argument(
            "--model", required=True, choices=("generator", "discriminator", "restorer")
        )
        command.add_argument("src")
        command.add_argument("dst")
        command.add_argument("--force", action="store_true", help="replace an existing output")
    to_jax.add_argument(
        "--key", help="the state dict inside a checkpoint dict, e.g. netG or state_dict"
    )
    to_torch.add_argument(
        "--no-ema", action="store_true", help="from a workdir: the live generator, not its EMA"
    )
    to_torch.add_argument(
        "--spectral-norm-format",
        choices=("parametrizations", "legacy"),
        help="keys of a spectrally normalised G or D: "
        "torch.nn.utils.parametrizations.spectral_norm's "
        "(parametrizations.weight.original, ..._u, ..._v) or torch.nn.utils.spectral_norm's "
        "(weight_orig, weight_u, weight_v); default: the format it was converted from, else "
        "parametrizations",
    )
    state_to_torch = commands.add_parser(
        "state2torch", help="a training workdir -> a torch_ref checkpoint (.pth)"
    )
    state_to_torch.add_argument("src", help="a jaxgan training workdir")
    state_to_torch.add_argument(
        "dst", help="the .pth checkpoint to write (resume it with torch_ref/train.py --resume)"
    )
    state_to_torch.add_argument(
        "--step", type=int, help="the checkpoint to convert (default: the latest)"
    )
    state_to_jax = commands.add_parser(
        "state2jax", help="a torch_ref checkpoint (.pth) -> a training workdir"
    )
    state_to_jax.add_argument(
        "src", help="a checkpoint written by torch_ref/train.py (or by state2torch)"
    )
    state_to_jax.add_argument(
        "dst", help="the workdir to create (resume it with scripts/train.py --workdir)"
    )
    for command in (state_to_torch, state_to_jax):
        command.add_argument("--force", action="store_true", help="replace an existing output")
    args = parser.parse_args(argv)
    if args.command in ("state2torch", "state2jax"):
        return convert_training_state(args)

    from jaxgan import checkpoint, convert, model_folder, torch_files
    from jaxgan.atomic import check_writable

    try:
        check_writable(args.dst, args.force)
        if args.command == "torch2jax":
            state_dict, notes = torch_files.load_state_dict(args.src, args.key)
            for note in notes:
                print(f"note: {note}")
            arch = convert.infer_arch(args.model, state_dict)
            variables = convert.torch_to_flax(arch, state_dict)
            model_folder.save_model(
                args.dst, arch, variables, force=args.force, notes={"source": str(args.src)}
            )
        else:
            arch, variables = load_model_for_export(args.src, args.model, not args.no_ema)
            if args.spectral_norm_format:
                if not arch.get("spectral_norm"):
                    raise convert.ConversionError(
                        f"{args.src}: --spectral-norm-format is for a spectrally normalised "
                        f"model; this {args.model} has no spectral normalisation"
                    )
                arch = {**arch, "spectral_norm": args.spectral_norm_format}
            torch_files.save_state_dict(
                convert.flax_to_torch(arch, variables), args.dst, force=args.force
            )
    except (
        convert.ConversionError,
        torch_files.WeightsFileError,
        checkpoint.CheckpointError,
        FileExistsError,
        FileNotFoundError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"converted {args.model} {convert.describe(arch)}: {args.src} -> {args.dst}")
    return 0


def convert_training_state(args: argparse.Namespace) -> int:
    """state2torch / state2jax: a whole training state, one framework's checkpoint to the
    other's."""
    from jaxgan import checkpoint, convert, convert_state, loading, torch_files
    from jaxgan.atomic import check_writable
    from jaxgan.config import ConfigError

    try:
        check_writable(args.dst, args.force)
        if args.command == "state2torch":
            config, train_state, step = loading.restore_training_state(args.src, args.step)
            converted = convert_state.state_to_torch(config, train_state)
            convert_state.save_torch_checkpoint(converted, args.dst, force=args.force)
        else:
            values = convert_state.load_torch_checkpoint(args.src)
            config, train_state = convert_state.state_from_torch(values, source=str(args.src))
            step = int(train_state.step)
            convert_state.write_workdir(
                args.dst,
                config,
                train_state,
                force=args.force,
                notes={"converted_from": str(args.src)},
            )
    except (
        convert.ConversionError,
        ConfigError,
        torch_files.WeightsFileError,
        checkpoint.CheckpointError,
        FileExistsError,
        FileNotFoundError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"converted the training state at step {step} ({config.dtype}): {args.src} -> {args.dst}")
    return 0


def load_model_for_export(src: str, model: str, use_ema: bool):
    """(arch, variables) of `model` from a model folder or a training workdir."""
    from jaxgan.loading import load_variables

    arch, variables, _ = load_variables(src, model, use_ema)
    return arch, variables


if __name__ == "__main__":
    sys.exit(main())
