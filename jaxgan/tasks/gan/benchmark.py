"""`scripts/evaluate.py gan`: FID, KID, IS and the digits metrics of a generator, as a table and
JSON.

Images are generated batch by batch (the EMA generator unless `no_ema`; eval-mode BatchNorm unless
`batch_stats`, as scripts/sample.py) and go straight into streaming statistics, so `num` can be
50,000. Inception metrics follow pytorch-fid (FID, KID) and OpenAI's code (IS); the reference is a
statistics `.npz` (`ref`) or images (`data`: a folder, or a built-in data set's training split).
Digits metrics always compare with the built-in digits' training split.
"""

from __future__ import annotations

import json as json_lib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from jaxgan import run_info
from jaxgan.metrics import digits as digits_lib
from jaxgan.metrics.fid import FeatureStatistics, frechet_distance, load_statistics
from jaxgan.metrics.inception import FEATURES as INCEPTION_FEATURES
from jaxgan.metrics.inception_score import InceptionScore
from jaxgan.metrics.kid import kernel_inception_distance

INCEPTION_METRICS = ("fid", "kid", "is", "prdc")
FEATURE_METRICS = {"kid", "prdc"}  # need the reference's features, not only its statistics
DIGITS_METRICS = (
    "digits-fid",
    "digits-kid",
    "digits-is",
    "modes",
    "digits-prdc",
    "digits-memorisation",
    "digits-class-agreement",
)
BUILT_IN_SIZE = 64  # built-in --data without a checkpoint (for --save-stats)


def evaluate_gan(
    checkpoint: str | None = None,
    metric: list[str] | tuple[str, ...] | None = None,
    num: int = 10_000,
    ref: str | None = None,
    data: str | None = None,
    save_stats: str | None = None,
    inception_weights: str | None = None,
    batch_size: int = 200,
    seed: int = 0,
    no_ema: bool = False,
    batch_stats: bool = False,
    json: str | None = None,
) -> dict[str, Any]:
    """Measure `metric`s of `num` images generated from `checkpoint` (or, with `save_stats`, write
    the reference statistics of `data`); print a markdown table, write `json`; return the
    results."""
    metrics = list(dict.fromkeys(metric or ()))
    if not metrics and not save_stats:
        raise ValueError(
            f"choose at least one --metric: {', '.join(INCEPTION_METRICS + DIGITS_METRICS)}"
        )
    unknown = [m for m in metrics if m not in INCEPTION_METRICS + DIGITS_METRICS]
    if unknown:
        raise ValueError(
            f"unknown metric(s) {unknown}; choose from {INCEPTION_METRICS + DIGITS_METRICS}"
        )
    inception_metrics = [m for m in metrics if m in INCEPTION_METRICS]
    if batch_size < 1 or num < 1:
        raise ValueError(f"--num ({num}) and --batch-size ({batch_size}) must be at least 1")
    if save_stats:
        return _save_reference(
            save_stats, data, checkpoint, inception_metrics, inception_weights, batch_size
        )
    if not checkpoint:
        raise ValueError(
            "--checkpoint (a training workdir or a generator folder) is needed, unless --save-stats"
        )
    if {"fid", *FEATURE_METRICS} & set(metrics) and not (ref or data):
        raise ValueError(
            "fid, kid and prdc compare with reference images: give --ref STATS.npz or --data DIR"
        )

    from jaxgan.data.order import sample_latents
    from jaxgan.sampling import iterate_generate, load_generator

    arch, variables = load_generator(checkpoint, use_ema=not no_ema)
    classes = arch.get("num_classes", 0)
    if "digits-class-agreement" in metrics and classes != 10:
        raise ValueError(
            "digits-class-agreement asks a class-conditional digits generator (10 classes) for "
            f"each digit; {checkpoint} holds a generator with "
            + (f"{classes} classes" if classes else "no classes")
        )
    info = run_info.read_run_info(checkpoint) if run_info.is_workdir(checkpoint) else None
    ema = bool(info and info["config"].ema_decay > 0 and not no_ema)
    extractor, reference = None, None
    if ref and {"fid", *FEATURE_METRICS} & set(
        metrics
    ):  # a bad statistics file fails before anything is computed
        reference = _reference_file(ref, bool(FEATURE_METRICS & set(metrics)))
    if inception_metrics:
        from jaxgan.metrics.inception import InceptionFeatures

        extractor = InceptionFeatures(inception_weights, min(batch_size, num))
    if reference is None and {"fid", *FEATURE_METRICS} & set(metrics):
        statistics, features, description = _reference_features(
            data, arch["image_size"], extractor, batch_size
        )
        reference = {
            "mu": statistics.mean,
            "sigma": statistics.covariance,
            "features": features,
            "description": description,
        }
    classifier = (
        digits_lib.DigitsClassifier(batch_size=min(batch_size, num))
        if set(metrics) & set(DIGITS_METRICS)
        else None
    )

    generated = FeatureStatistics(INCEPTION_FEATURES)
    score = InceptionScore(num) if "is" in metrics else None
    kept: dict[str, list[np.ndarray]] = {"inception": [], "digits": [], "digits_logits": []}
    latents = sample_latents(seed, num, arch["nz"])
    # A class-conditional generator draws its classes in turn: image i is of class i mod C.
    labels = np.arange(num, dtype=np.int32) % classes if classes else None
    batches = iterate_generate(arch, variables, latents, batch_size, batch_stats, labels=labels)
    for images in _progress(batches, math.ceil(num / min(batch_size, num)), "generating"):
        if extractor is not None:
            features, logits = extractor.features_and_logits(images)
            generated.update(features)
            if score is not None:
                score.update(logits)
            if FEATURE_METRICS & set(metrics):
                kept["inception"].append(features)
        if classifier is not None:
            features, logits = classifier.features_and_logits(images)
            kept["digits"].append(features)
            kept["digits_logits"].append(logits)

    results: dict[str, Any] = {}
    if "fid" in metrics:
        generated.check_count("generated images")
        results["fid"] = frechet_distance(
            generated.mean, generated.covariance, reference["mu"], reference["sigma"]
        )
    if "kid" in metrics:
        results["kid"], results["kid-std"] = kernel_inception_distance(
            np.concatenate(kept["inception"]), reference["features"], seed=seed
        )
    if "prdc" in metrics:
        from jaxgan.metrics.prdc import with_papers_k

        results.update(with_papers_k(reference["features"], np.concatenate(kept["inception"])))
    if score is not None:
        results["is"], results["is-std"] = score.result()
    if "digits-class-agreement" in metrics:
        from jaxgan.tasks.gan.evaluate import class_agreement

        agreement = class_agreement(np.concatenate(kept["digits_logits"]), labels, classes)
        results["digits-class-agreement"] = agreement["agreement"]
        results["digits-classes-agreeing"] = agreement["classes_agreeing"]
        results["digits-class-agreement-detail"] = agreement["per_class"]
    digits_names = tuple(
        m
        for m in metrics
        if m in DIGITS_METRICS and m not in ("digits-memorisation", "digits-class-agreement")
    )
    floor = {}
    if digits_names:
        real = digits_lib.real_features(arch["image_size"], arch["nc"], "train")[0]
        results.update(
            digits_lib.digits_metrics(
                np.concatenate(kept["digits"]),
                np.concatenate(kept["digits_logits"]),
                real,
                seed,
                digits_names,
            )
        )
        held_out = digits_lib.real_features(arch["image_size"], arch["nc"], "test")
        floor = digits_lib.digits_metrics(*held_out, real, seed, digits_names)
    if "digits-memorisation" in metrics:
        from jaxgan.metrics.prdc import memorisation

        train = digits_lib.real_features(arch["image_size"], arch["nc"], "train")[0]
        held_out_features = digits_lib.real_features(arch["image_size"], arch["nc"], "test")[0]
        found = memorisation(train, np.concatenate(kept["digits"]), held_out_features)
        results["digits-memorisation"] = found["ratio"]
        results["digits-memorisation-detail"] = found

    record = {
        "checkpoint": str(checkpoint),
        "num_images": num,
        "seed": seed,
        "ema": ema,
        "batch_stats": batch_stats,
        "metrics": results,
    }
    if reference is not None:
        record["reference"] = reference["description"]
    if inception_metrics:
        record["inception_weights"] = str(extractor.weights_path)
    if digits_names:
        record["digits_reference"] = "built-in digits, training split (1,500 images)"
        record["real_held_out"] = (
            floor  # the same metrics of the 297 held-out real digits: the floor
        )
    print(markdown_table(record))
    if json:
        _write_json(json, record)
    return record


def markdown_table(record: dict[str, Any]) -> str:
    """The results as a markdown table (beside them, the real held-out digits' values), and how they
    were made."""
    generator = "EMA generator" if record["ema"] else "generator (no EMA)"
    batchnorm = (
        "batch statistics (train mode)"
        if record["batch_stats"]
        else "running statistics (eval mode)"
    )
    floor = record.get("real_held_out", {})
    header = "| metric | generated |" + (" real held-out digits |" if floor else "")
    lines = [
        f"{record['checkpoint']}: {record['num_images']} images from seed {record['seed']}, "
        f"{generator}, "
        f"BatchNorm {batchnorm}",
        "",
        header,
        "|---" * header.count(" |") + "|",
    ]
    names = [
        n
        for n in record["metrics"]
        if not n.endswith(("-std", "-detail")) and n != "digit-frequencies"
    ]
    for name in names + (["digit-frequencies"] if "digit-frequencies" in record["metrics"] else []):
        row = f"| {name} | {_shown(record['metrics'], name)} |" + (
            f" {_shown(floor, name)} |" if floor else ""
        )
        lines.append(row)
    return "\n".join(lines)


def _shown(values: dict[str, Any], name: str) -> str:
    if name not in values:
        return ""
    if name == "modes":
        return f"{values[name]}/10"
    if name == "digit-frequencies":
        return " ".join(f"{f:.3f}" for f in values[name])
    shown = f"{values[name]:.6g}"
    return shown + (f" ± {values[name + '-std']:.3g}" if f"{name}-std" in values else "")


def _reference_file(ref: str, need_features: bool) -> dict[str, Any]:
    """{'mu', 'sigma'[, 'features'], 'description'} of a statistics file (pytorch-fid's or
    --save-stats')."""
    stats = load_statistics(ref, INCEPTION_FEATURES)
    if need_features and "features" not in stats:
        raise ValueError(
            f"{ref}: KID needs the reference features, which this file lacks; give --data, or "
            "write the file with --save-stats and --metric kid"
        )
    return {**stats, "description": f"statistics file {ref}"}


def _reference_features(data: str, image_size: int, extractor, batch_size: int):
    """(FeatureStatistics, all features, description) of a folder's images or a built-in training
    split."""
    statistics, kept = FeatureStatistics(INCEPTION_FEATURES), []
    batches, count, description = _reference_batches(data, image_size, batch_size)
    for images in _progress(batches, count, "reference"):
        features = extractor(images)
        statistics.update(features)
        kept.append(features)
    statistics.check_count("reference images")
    return statistics, np.concatenate(kept), f"{description}: {statistics.count} images"


def _reference_batches(data: str, image_size: int, batch_size: int):
    """(iterator of NHWC batches, number of batches, description); a folder's images at their own
    size, batched while the size stays the same, uint8 files as uint8 (pytorch-fid's ToTensor)."""
    from jaxgan.data import images as images_lib
    from jaxgan.data.sources import Digits, Photos

    if data in ("digits", "photos"):
        source = (Digits if data == "digits" else Photos)(image_size, 3, "train")
        count = len(source) if data == "digits" else 1000  # photos: 1,000 random crops

        def built_in():
            for start in range(0, count, batch_size):
                yield np.stack(
                    [
                        source.load(i % len(source), i)
                        for i in range(start, min(start + batch_size, count))
                    ]
                )

        description = f"built-in {data!r} training split at {image_size}x{image_size}"
        return built_in(), math.ceil(count / batch_size), description
    files = images_lib.list_images(data)

    def folder():
        batch: list[np.ndarray] = []
        for path in files:
            pixels = images_lib.read_image(path)
            if pixels.dtype == np.uint8:
                image = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels
            else:
                image = (
                    images_lib.to_channels(images_lib.to_unit(pixels, name=str(path)), 3, str(path))
                    * 2
                    - 1
                )
            if batch and (
                image.shape != batch[0].shape
                or image.dtype != batch[0].dtype
                or len(batch) == batch_size
            ):
                yield np.stack(batch)
                batch = []
            batch.append(image)
        if batch:
            yield np.stack(batch)

    return folder(), math.ceil(len(files) / batch_size), f"folder {data}"


def _save_reference(
    path: str,
    data: str | None,
    checkpoint: str | None,
    inception_metrics: list[str],
    weights: str | None,
    batch_size: int,
) -> dict[str, Any]:
    """Write the reference statistics of `data` (pytorch-fid's mu/sigma; the features too for
    KID)."""
    from jaxgan.atomic import check_writable

    if not data:
        raise ValueError("--save-stats writes the statistics of reference images: give --data DIR")
    check_writable(path, force=False)
    image_size = BUILT_IN_SIZE
    if checkpoint:
        from jaxgan.sampling import load_generator

        image_size = load_generator(checkpoint)[0]["image_size"]
    from jaxgan.metrics.inception import InceptionFeatures

    statistics, features, description = _reference_features(
        data, image_size, InceptionFeatures(weights, batch_size), batch_size
    )
    extra = (
        {"features": features.astype(np.float32)}
        if FEATURE_METRICS & set(inception_metrics)
        else {}
    )
    statistics.save(path, **extra)
    print(
        f"wrote the Inception statistics of {description} to {path}"
        + (" (with features, for KID)" if extra else "")
    )
    return {"saved": str(path), "reference": description, "num_images": statistics.count}


def _write_json(path: str | os.PathLike, record: dict[str, Any]) -> None:
    from jaxgan.atomic import atomic_path

    with atomic_path(Path(path)) as temporary:
        temporary.write_text(json_lib.dumps(record, indent=2) + "\n")


def _progress(iterable, total: int, what: str):
    from tqdm import tqdm

    return tqdm(iterable, total=total, unit="batch", desc=what, leave=False, dynamic_ncols=True)
