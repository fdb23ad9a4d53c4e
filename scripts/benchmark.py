"""Benchmark jaxgan's train step against the PyTorch reference, side by side.

  python scripts/benchmark.py --quick --json bench.json  # dcgan64, batch 64, jaxgan vs torch eager
  python scripts/benchmark.py --models dcgan64 dcgan32 restorer64 --batches 64 128 512
      --modes eager compile
  python scripts/benchmark.py --loaders                  # input pipeline throughput
  python scripts/benchmark.py --sweep 8                  # K dcgan32 runs as one sweep vs one by
                                                         # one: speed and compile time
  python scripts/benchmark.py --restore                  # shipped restorers, NLM, BM3D on 1 MP

Every contender runs in its own process (two frameworks in one process fight over the cores), and
the contenders take turns for several rounds; each round reports its own ratio to PyTorch eager.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
from pathlib import Path


def run_worker(spec: dict) -> dict:
    """Measure one contender in a fresh process (this script with --worker)."""
    result = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"benchmark worker {spec} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def worker(spec: dict) -> dict:
    if spec["framework"] == "restore":
        from jaxgan.tasks.restore.benchmark import restore_speed

        return restore_speed(spec["method"])
    if spec["framework"] == "jaxgan":
        from jaxgan.benchmarking import measure_jaxgan

        return measure_jaxgan(spec["model"], spec["batch"], spec["dtype"], spec["steps"])
    if spec["framework"] == "loader":
        from jaxgan.benchmarking import measure_loader

        return measure_loader(
            spec["data"], spec["image_size"], spec["batch"], spec["steps"], spec["threads"]
        )
    if spec["framework"] == "sweep":
        from jaxgan.benchmarking import measure_sweep

        return measure_sweep(spec["runs"], spec["batch"], spec["steps"], spec["form"])
    from torch_ref.benchmarking import measure_torch

    return measure_torch(
        spec["model"], spec["batch"], spec["dtype"], spec["steps"], spec["mode"], spec["device"]
    )


def row(spec: dict, rounds: list[dict], baseline: list[dict] | None) -> dict:
    """One JSON row: medians over rounds, spread, and each round's ratio to PyTorch eager."""
    medians = [statistics.median(r["step_s"]) for r in rounds]
    per_round = [spec["batch"] / m for m in medians]
    result = {
        "model": spec["model"],
        "framework": spec["framework"],
        "mode": spec["mode"],
        "device": rounds[0]["device"],
        "dtype": spec["dtype"],
        "batch": spec["batch"],
        "threads": rounds[0]["threads"],
        "img_per_s": statistics.median(per_round),
        "step_ms_median": 1000 * statistics.median(medians),
        "step_ms_spread": [
            1000 * min(min(r["step_s"]) for r in rounds),
            1000 * max(max(r["step_s"]) for r in rounds),
        ],
        "compile_s": statistics.median(r["compile_s"] for r in rounds),
        "peak_mem_mb": max(r["peak_mem_mb"] for r in rounds),
        "img_per_s_rounds": per_round,
    }
    if rounds[0].get("flops_per_step"):
        result["gflop_per_image"] = rounds[0]["flops_per_step"] / spec["batch"] / 1e9
    if baseline:
        base = [spec["batch"] / statistics.median(r["step_s"]) for r in baseline]
        result["ratio_to_torch_eager_rounds"] = [
            a / b for a, b in zip(per_round, base, strict=True)
        ]
    return result


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | batch | dtype | framework | mode | img/s | step ms (median) | "
        "step ms (min-max) | compile s | peak MB | vs torch eager, per round |",
        "|" + "---|" * 11,
    ]
    for r in rows:
        ratios = ", ".join(f"{x:.2f}x" for x in r.get("ratio_to_torch_eager_rounds", [])) or "-"
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['dtype']} | {r['framework']} | {r['mode']} | "
            f"{r['img_per_s']:.1f} | {r['step_ms_median']:.0f} | {r['step_ms_spread'][0]:.0f}-"
            f"{r['step_ms_spread'][1]:.0f} | {r['compile_s']:.1f} | {r['peak_mem_mb']:.0f} | "
            f"{ratios} |"
        )
    return "\n".join(lines)


def sweep_table(rows: list[dict], num_forms: int, runs: int) -> str:
    """One line per round and form (speed, fresh compile time, speed against sequential), then
    each form's medians over the rounds."""
    rounds = [rows[i : i + num_forms] for i in range(0, len(rows), num_forms)]
    lines = [
        f"| round | form ({runs} dcgan32 runs) | img/s over all runs | compile s | vs sequential |",
        "|---|---|---|---|---|",
    ]
    for index, results in enumerate(rounds):
        for r in results:
            lines.append(
                f"| {index + 1} | {r['form']} | {r['img_per_s']:.0f} | {r['compile_s']:.1f} | "
                f"{r['img_per_s'] / results[0]['img_per_s']:.2f}x |"
            )
    for form in range(num_forms):
        column = [results[form] for results in rounds]
        ratios = [results[form]["img_per_s"] / results[0]["img_per_s"] for results in rounds]
        lines.append(
            f"| median | {column[0]['form']} | "
            f"{statistics.median(r['img_per_s'] for r in column):.0f} | "
            f"{statistics.median(r['compile_s'] for r in column):.1f} | "
            f"{statistics.median(ratios):.2f}x |"
        )
    return "\n".join(lines)


def compare(args) -> list[dict]:
    contenders = [("jaxgan", "jit")] + [("torch", mode) for mode in args.modes]
    rows = []
    for model in args.models:
        for batch in args.batches:
            for dtype in args.dtypes:
                results = {c: [] for c in contenders}
                for round_index in range(args.rounds):
                    for framework, mode in contenders:
                        spec = dict(
                            framework=framework,
                            mode=mode,
                            model=model,
                            batch=batch,
                            dtype=dtype,
                            steps=args.steps,
                            device=args.device,
                        )
                        results[(framework, mode)].append(run_worker(spec))
                        rate = batch / statistics.median(results[(framework, mode)][-1]["step_s"])
                        print(
                            f"round {round_index + 1}/{args.rounds} {model} batch {batch} {dtype} "
                            f"{framework} {mode}: "
                            f"{rate:.1f} "
                            "img/s",
                            file=sys.stderr,
                        )
                baseline = results.get(("torch", "eager"))
                for (framework, mode), rounds in results.items():
                    spec = dict(
                        framework=framework, mode=mode, model=model, batch=batch, dtype=dtype
                    )
                    rows.append(row(spec, rounds, baseline if framework == "jaxgan" else None))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="dcgan64, batch 64, float32, jaxgan vs torch eager"
    )
    parser.add_argument("--models", nargs="+", default=["dcgan64", "dcgan32", "restorer64"])
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 128, 512])
    parser.add_argument("--dtypes", nargs="+", default=["float32"], choices=("float32", "bfloat16"))
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["eager", "compile"],
        choices=("eager", "compile"),
        help="PyTorch contenders",
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device: cpu or cuda (jaxgan uses JAX's default)"
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="the device's peak TFLOP/s in the measured dtype: adds "
        "model FLOPs utilisation (from XLA's FLOP count) to jaxgan's rows",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--steps", type=int, default=10, help="timed steps per round (after 2 warm-up steps)"
    )
    parser.add_argument("--loaders", action="store_true", help="measure the input pipeline instead")
    parser.add_argument(
        "--sweep",
        type=int,
        metavar="K",
        help="measure K dcgan32 runs as one sweep instead: speed and compile time",
    )
    parser.add_argument(
        "--sweep-modes",
        nargs="+",
        default=["auto"],
        choices=("auto", "vmap", "loop"),
        help="the sweep's forms measured against K sequential runs (auto: the backend's choice)",
    )
    parser.add_argument(
        "--restore",
        nargs="*",
        metavar="METHOD",
        help="restore speed on a 1-megapixel image: shipped restorers by name, nlm, bm3d "
        "(default all)",
    )
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.quick:
        args.models, args.batches, args.dtypes, args.modes = (
            ["dcgan64"],
            [64],
            ["float32"],
            ["eager"],
        )
    if args.restore is not None:
        from jaxgan.tasks.restore import pretrained

        methods = args.restore or [*pretrained.names(), "nlm", "bm3d"]
        rows = [run_worker(dict(framework="restore", method=method)) for method in methods]
        text = "\n".join(
            ["| method | seconds per 1-MP image | MP/s |", "|---|---:|---:|"]
            + [f"| {r['method']} | {r['seconds']:.2f} | {r['mp_per_s']:.3f} |" for r in rows]
        )
    elif args.loaders:
        loaders = [(data, 64) for data in ("digits", "photos", "folder", "prepared")]
        loaders += [(data, 128) for data in ("folder", "prepared")]
        rows = [
            run_worker(
                dict(
                    framework="loader",
                    data=data,
                    image_size=size,
                    batch=64,
                    steps=args.steps,
                    threads=threads,
                )
            )
            for data, size in loaders
            for threads in (1, 8)
        ]
        text = "\n".join(
            ["| data | size | threads | img/s |", "|---|---|---|---|"]
            + [
                f"| {r['data']} | {r['image_size']} | {r['threads']} | {r['img_per_s']:.0f} |"
                for r in rows
            ]
        )
    elif args.sweep:
        forms = ["sequential", *args.sweep_modes]
        rows = [
            run_worker(
                dict(framework="sweep", runs=args.sweep, batch=64, steps=args.steps, form=form)
            )
            for _ in range(args.rounds)
            for form in forms
        ]
        text = sweep_table(rows, len(forms), args.sweep)
    else:
        rows = compare(args)
        if args.peak_tflops:
            for r in rows:
                if "gflop_per_image" in r:
                    r["mfu"] = r["gflop_per_image"] * r["img_per_s"] / (1000 * args.peak_tflops)
        text = markdown(rows) + "".join(
            f"\nMFU {r['model']} batch {r['batch']} {r['dtype']}: {100 * r['mfu']:.1f}%"
            for r in rows
            if "mfu" in r
        )
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    command = " ".join(
        ["python scripts/benchmark.py", *(argv if argv is not None else sys.argv[1:])]
    )
    print(f"\n{command}  ({stamp})")
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
