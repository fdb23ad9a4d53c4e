"""Train a GAN (or a restorer): `python scripts/train.py --config dcgan64 [--config.FIELD=VALUE ...]`."""

from __future__ import annotations

import argparse
import sys

from jaxgan import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    cli.add_config_flag(parser)
    parser.add_argument("--workdir", help="where checkpoints, logs and samples go (default: workdirs/CONFIG); "
                        "an existing workdir resumes from its latest checkpoint")
    parser.add_argument("--coordinator-address", help="HOST:PORT of process 0, for multi-process runs "
                        "(auto-detected on Cloud TPU slices, SLURM and Open MPI)")
    parser.add_argument("--num-processes", type=int, help="processes in a multi-process run")
    parser.add_argument("--process-id", type=int, help="this process's index in a multi-process run")
    args, config = cli.load_config(parser, argv)
    cli.enable_compilation_cache()
    from jaxgan import checkpoint, sharding, trainer

    if args.coordinator_address or args.num_processes or sharding.multi_process_environment():
        sharding.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
    workdir = args.workdir or f"workdirs/{args.config.rsplit('/', 1)[-1].removesuffix('.py')}"
    try:
        trainer.train(config, workdir)
    except (trainer.NonFiniteError, checkpoint.CheckpointError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    import jax

    if jax.process_index() == 0:
        print(f"done: checkpoints, samples, metrics.jsonl and TensorBoard logs are in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
