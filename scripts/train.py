"""Train a GAN (or a restorer): `python scripts/train.py --config dcgan64
    [--config.FIELD=VALUE ...]`.

A sweep trains many runs at once: `--sweep seed=0,1,2,3 --sweep lr=1e-4,2e-4` (docs/sweeps.md).
"""

from __future__ import annotations

import argparse
import sys

from jaxgan import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    cli.add_config_flag(parser)
    parser.add_argument(
        "--workdir",
        help="where checkpoints, logs and samples go (default: workdirs/CONFIG, a sweep "
        "workdirs/CONFIG_sweep); "
        "an existing workdir resumes from its latest checkpoint",
    )
    parser.add_argument(
        "--allow-data-change",
        action="store_true",
        help="resume even though the data folder's "
        "files changed since the run started (its fingerprint in run.json); batches then differ",
    )
    parser.add_argument(
        "--coordinator-address",
        help="HOST:PORT of process 0, for multi-process runs "
        "(auto-detected on Cloud TPU slices, SLURM and Open MPI)",
    )
    parser.add_argument("--num-processes", type=int, help="processes in a multi-process run")
    parser.add_argument(
        "--process-id", type=int, help="this process's index in a multi-process run"
    )
    sweeps = parser.add_argument_group("sweeps: many runs in one compiled step (docs/sweeps.md)")
    sweeps.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="FIELD=V1,V2,...",
        help="repeatable; the runs are the grid of the values. Fields: seed, data_seed, lr, beta1, "
        "beta2, ema_decay, lambda_rec, lambda_adv",
    )
    sweeps.add_argument(
        "--sweep-file",
        help='a JSON file: {"grid": {FIELD: [values]}} or {"runs": [{FIELD: value}]}',
    )
    sweeps.add_argument(
        "--sort-by", help="the metric ranking the summary (default: FID, digits_fid or psnr)"
    )
    sweeps.add_argument(
        "--sweep-mode",
        choices=("auto", "vmap", "loop"),
        default="auto",
        help="jax.vmap of the step, or the runs one after another through one compiled single-run "
        "step (auto: loop on CPU, vmap elsewhere)",
    )
    sweeps.add_argument(
        "--ref", help="reference statistics .npz: each run's FID against it goes into the summary"
    )
    sweeps.add_argument(
        "--inception-weights", help="FID Inception weights for --ref ($JAXGAN_INCEPTION_WEIGHTS)"
    )
    args, config = cli.load_config(parser, argv)
    cli.enable_compilation_cache()
    from jaxgan import checkpoint, sharding, sweep, sweep_train, trainer

    workdir = args.workdir or (
        f"workdirs/{args.config.rsplit('/', 1)[-1].removesuffix('.py')}"
        + ("_sweep" if args.sweep or args.sweep_file else "")
    )
    try:
        spec = sweep_train.requested_sweep(args.sweep, args.sweep_file, workdir, config)
    except sweep.SweepError as error:
        parser.exit(2, f"error: {error}\n")
    if args.coordinator_address or args.num_processes or sharding.multi_process_environment():
        sharding.initialize_distributed(
            args.coordinator_address, args.num_processes, args.process_id
        )
    try:
        if spec is None:
            trainer.train(config, workdir, allow_data_change=args.allow_data_change)
        else:
            sweep_train.train_sweep(
                config,
                spec,
                workdir,
                args.sweep_mode,
                args.sort_by,
                args.ref,
                args.inception_weights,
                args.allow_data_change,
            )
    except (
        trainer.NonFiniteError,
        checkpoint.CheckpointError,
        FileNotFoundError,
        ValueError,
        RuntimeError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    import jax

    if (
        jax.process_index() == 0 and spec is not None
    ):  # a single run's last line is the trainer's summary
        print(
            f"done: checkpoints, samples, metrics.jsonl and TensorBoard logs are in {workdir} "
            "(a folder per run; the ranked runs in summary.md)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
