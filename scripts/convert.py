"""Convert models between PyTorch and jaxgan.

  python scripts/convert.py torch2jax --model generator weights.pth OUT_DIR
  python scripts/convert.py jax2torch --model generator MODEL_DIR_OR_WORKDIR weights.pth|.safetensors

Architecture (nc, widths, nz, image size) is read off the tensors. `.pth` files are read with
`weights_only=True`; `.safetensors` needs no torch. Nothing is written on failure, and an existing
output is only replaced with --force.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    to_jax = commands.add_parser("torch2jax", help="a PyTorch state dict -> a jaxgan model folder")
    to_torch = commands.add_parser("jax2torch", help="a jaxgan model folder or training workdir -> .pth/.safetensors")
    for command in (to_jax, to_torch):
        command.add_argument("--model", required=True, choices=("generator", "discriminator", "restorer"))
        command.add_argument("src")
        command.add_argument("dst")
        command.add_argument("--force", action="store_true", help="replace an existing output")
    to_jax.add_argument("--key", help="the state dict inside a checkpoint dict, e.g. netG or state_dict")
    to_torch.add_argument("--no-ema", action="store_true", help="from a workdir: the live generator, not its EMA")
    args = parser.parse_args(argv)

    from jaxgan import checkpoint, convert, torch_files
    from jaxgan.atomic import check_writable

    try:
        check_writable(args.dst, args.force)
        if args.command == "torch2jax":
            state_dict, notes = torch_files.load_state_dict(args.src, args.key)
            for note in notes:
                print(f"note: {note}")
            arch = convert.infer_arch(args.model, state_dict)
            variables = convert.torch_to_flax(arch, state_dict)
            checkpoint.save_model(args.dst, arch, variables, force=args.force, notes={"source": str(args.src)})
        else:
            arch, variables = load_model_for_export(args.src, args.model, not args.no_ema)
            torch_files.save_state_dict(convert.flax_to_torch(arch, variables), args.dst, force=args.force)
    except (convert.ConversionError, torch_files.WeightsFileError, checkpoint.CheckpointError,
            FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"converted {args.model} {convert.describe(arch)}: {args.src} -> {args.dst}")
    return 0


def load_model_for_export(src: str, model: str, use_ema: bool):
    """(arch, variables) of `model` from a model folder or a training workdir."""
    from jaxgan import checkpoint, convert, sampling, state

    if checkpoint.is_workdir(src):
        config, train_state, _ = sampling.restore_training_state(src)
        if model == "discriminator":
            d = train_state.discriminator
            return state.discriminator_arch(config), {"params": d.params, "batch_stats": d.batch_stats}
        arch = state.generator_arch(config)
        variables = state.sample_variables(train_state, use_ema and config.ema_decay > 0)
    else:
        arch, variables = checkpoint.load_model(src)
    if arch["model"] != model:
        raise convert.ConversionError(f"{src} holds a {arch['model']}, not a {model}")
    return arch, variables


if __name__ == "__main__":
    sys.exit(main())
