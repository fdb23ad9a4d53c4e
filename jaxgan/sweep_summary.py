"""A sweep's outcome: one row per run (swept values, status, final losses, evaluation), ranked by a
metric.

Every value is read back from the run's own metrics.jsonl (its latest value of each name, the later
line winning after a resume), so the summary shows exactly what TensorBoard shows; names are the
TensorBoard names (`loss/g`, `eval/digits_fid`). Written as WORKDIR/summary.md and summary.json.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from jaxgan.atomic import atomic_path
from jaxgan.config import ConfigError

# The names a sweep can be ranked by (the trainer's and the evaluators' TensorBoard names).
LOSSES = (
    "loss/d",
    "loss/g",
    "loss/reconstruction",
    "loss/adversarial",
    "loss/d_real",
    "loss/d_fake",
    "d/x",
    "d/g_z1",
    "d/g_z2",
)
EVALUATIONS = (
    "eval/ref_fid",
    "eval/fid",
    "eval/is",
    "eval/digits_fid",
    "eval/digits_kid",
    "eval/digits_is",
    "eval/modes",
    "eval/digits_precision",
    "eval/digits_recall",
    "eval/digits_coverage",
    "eval/class_agreement",
    "eval/classes_agreeing",
    "eval/psnr",
    "eval/ssim",
    "eval/psnr_hole",
)
HIGHER_IS_BETTER = frozenset(
    {
        "eval/is",
        "eval/digits_is",
        "eval/modes",
        "eval/digits_precision",
        "eval/digits_recall",
        "eval/digits_coverage",
        "eval/class_agreement",
        "eval/classes_agreeing",
        "eval/psnr",
        "eval/ssim",
        "eval/psnr_hole",
    }
)
DEFAULT_ORDER = (
    "eval/ref_fid",
    "eval/fid",
    "eval/digits_fid",
    "eval/psnr",
)  # the first one measured ranks
SHOWN_LOSSES = ("loss/d", "loss/g", "loss/reconstruction", "d/x", "d/g_z1", "d/g_z2")


def resolve_sort_key(name: str) -> str:
    """A TensorBoard name, or its last part (`digits_fid`, `modes`, `psnr`), -> the full name."""
    known = LOSSES + EVALUATIONS
    matches = [key for key in known if name in (key, key.split("/")[-1])]
    if len(matches) != 1:
        raise ConfigError(
            f"--sort-by {name!r}: not a metric of a sweep; choose from "
            f"{', '.join(key.split('/')[-1] if key.startswith('eval/') else key for key in known)}"
        )
    return matches[0]


def check_sort_key(name: str | None) -> None:
    if name is not None:
        resolve_sort_key(name)


def latest_values(metrics_file: Path) -> dict[str, float]:
    """{name: value} of the highest step at which each name was logged (the later line for equal
    steps)."""
    found: dict[str, tuple[int, float]] = {}
    if metrics_file.is_file():
        for line in metrics_file.read_text().splitlines():
            record = json.loads(line)
            step = record.pop("step")
            for name, value in record.items():
                if name not in found or step >= found[name][0]:
                    found[name] = (step, value)
    return {name: value for name, (_, value) in found.items()}


def logged_at(metrics_file: Path, step: int) -> set[str]:
    """The names logged at `step` (to skip an evaluation already made there)."""
    names: set[str] = set()
    if metrics_file.is_file():
        for line in metrics_file.read_text().splitlines():
            record = json.loads(line)
            if record["step"] == step:
                names.update(record)
    return names


def run_row(
    index: int, name: str, settings: dict[str, Any], workdir: Path, step: int, stopped: dict | None
) -> dict[str, Any]:
    """One run's row: `name` is also its workdir's folder in the sweep's workdir."""
    values = latest_values(workdir / "metrics.jsonl")
    status = "finished" if stopped is None else f"stopped: non-finite at step {stopped['step'] + 1}"
    return {
        "index": index,
        "name": name,
        "settings": dict(settings),
        "status": status,
        "collapsed": collapsed(values),
        "step": step,
        "metrics": {k: v for k, v in values.items() if not k.startswith("speed/")},
    }


COLLAPSE_MODES, COLLAPSE_SHARE = 8, 0.5


def collapsed(values: dict[str, float]) -> str | None:
    """Why a run's last evaluation counts as collapsed (fewer than 8 of the 10 digits drawn, or one
    digit over half the images), or None."""
    reasons = []
    if values.get("eval/modes", 10) < COLLAPSE_MODES:
        reasons.append(f"{int(values['eval/modes'])}/10 digits")
    if values.get("eval/max_digit_share", 0) > COLLAPSE_SHARE:
        reasons.append(f"one digit is {values['eval/max_digit_share']:.0%} of the images")
    return ", ".join(reasons) or None


def rank(rows: list[dict[str, Any]], sort_by: str | None) -> dict[str, Any]:
    """The summary record: rows ranked by `sort_by` (default: the first of DEFAULT_ORDER measured),
    finished runs with the metric first, then finished runs without it, then stopped runs."""
    measured = {key for row in rows for key in row["metrics"]}
    key = (
        resolve_sort_key(sort_by)
        if sort_by
        else next((k for k in DEFAULT_ORDER if k in measured), None)
    )
    descending = key in HIGHER_IS_BETTER

    def order(row):
        value = row["metrics"].get(key) if key else None
        missing = value is None or not math.isfinite(value)
        return (
            row["status"] != "finished",
            missing,
            0 if missing else (-value if descending else value),
            row["index"],
        )

    ranked = [{"rank": position + 1, **row} for position, row in enumerate(sorted(rows, key=order))]
    return {"sorted_by": key, "order": "descending" if descending else "ascending", "runs": ranked}


def markdown(summary: dict[str, Any], title: str) -> str:
    """The summary as a markdown table: swept values, status, step, the ranking metric, evaluation,
    losses."""
    runs = summary["runs"]
    swept = list(dict.fromkeys(field for row in runs for field in row["settings"]))
    measured = {key for row in runs for key in row["metrics"]}
    key = summary["sorted_by"]
    columns = ([key] if key else []) + [
        k for k in EVALUATIONS + SHOWN_LOSSES if k in measured and k != key
    ]
    if key:
        better = "higher" if summary["order"] == "descending" else "lower"
        title += f", ranked by {key} ({better} is better)"
    header = ["rank", "run", *swept, "status", "step", *(c.removeprefix("eval/") for c in columns)]
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in runs:
        cells = [
            str(row["rank"]),
            row["name"],
            *(_show(row["settings"].get(f, "")) for f in swept),
            row["status"] + (f" (collapsed: {row['collapsed']})" if row.get("collapsed") else ""),
            str(row["step"]),
            *(_show(row["metrics"].get(c, ""), c) for c in columns),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _show(value: Any, name: str = "") -> str:
    if value == "" or not isinstance(value, (int, float)):
        return str(value)
    if name == "eval/modes":
        return f"{int(value)}/10"
    return f"{value:.4g}"


def write(root: Path, summary: dict[str, Any], table: str) -> None:
    """summary.md and summary.json, each written atomically."""
    with atomic_path(root / "summary.md") as temporary:
        temporary.write_text(table + "\n")
    with atomic_path(root / "summary.json") as temporary:
        temporary.write_text(json.dumps(summary, indent=2) + "\n")
