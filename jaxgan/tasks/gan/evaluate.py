"""Evaluation during GAN training (every `eval_every` steps): quality and mode coverage in
TensorBoard.

On the built-in digits: digits-FID, digits-KID and digits-IS of `eval_num` generated images against
the digits' training split, and how many of the 10 digits the generator draws (mode collapse shows
as this number falling). Elsewhere: FID and Inception Score with pytorch-fid's Inception when
$JAXGAN_INCEPTION_WEIGHTS names its weights, against `eval_num` training images; otherwise none.
Generation (fixed latents, the EMA generator, eval-mode BatchNorm with the live statistics) is split
over the mesh like a training batch; generator and feature extractor are compiled once each.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxgan import sharding
from jaxgan.config import Config
from jaxgan.data.order import sample_latents
from jaxgan.data.sources import DEFAULT_DATA, make_source
from jaxgan.metrics import digits
from jaxgan.state import Modules, TrainState, param_dtype, sampled_variables

PRDC = ("precision", "recall", "density", "coverage")
CHUNK = 500  # generated images per compiled call
EVAL_LATENT_SEED_OFFSET = 1  # evaluation latents differ from the sample grid's


def chunk_size(config: Config, mesh: Mesh) -> int:
    """Images per compiled call: up to CHUNK, a multiple of the device count."""
    devices = mesh.devices.size
    return math.ceil(min(CHUNK, config.eval_num) / devices) * devices


class GeneratedFeatures:
    """state -> (features, logits) of `num` generated images through
    `extract(extractor_vars, images)`.

    `extract` is the metric's own jitted function (shared with `scripts/evaluate.py`, so compiled
    once per process); the images stay on the devices between the two.
    """

    def __init__(
        self, config: Config, modules: Modules, mesh: Mesh, extract: Callable, extractor_vars: Any
    ):
        self.num, self.mesh, self.extract, self.config = config.eval_num, mesh, extract, config
        self.chunk = chunk_size(config, mesh)
        latents = sample_latents(config.seed + EVAL_LATENT_SEED_OFFSET, config.eval_num, config.nz)
        padded = math.ceil(config.eval_num / self.chunk) * self.chunk
        self.latents = np.zeros((padded, config.nz), param_dtype(config))
        self.latents[: config.eval_num] = latents
        # A class-conditional generator draws the classes in turn: image i is of class i mod C.
        self.labels = np.arange(padded, dtype=np.int32) % max(config.num_classes, 1)
        self.extractor_vars = sharding.replicate(extractor_vars, mesh)
        conditional = config.num_classes > 0

        def generate(variables, z, labels):
            classes = (labels,) if conditional else ()
            return (
                modules["generator"].apply(variables, z, *classes, train=False).astype(jnp.float32)
            )  # (chunk, S, S, nc)

        replicated, batch = sharding.replicated(mesh), sharding.batch_sharding(mesh)
        self._generate = jax.jit(
            generate, in_shardings=(replicated, batch, batch), out_shardings=batch
        )
        self._gather = jax.jit(
            lambda outputs: outputs, out_shardings=replicated
        )  # readable by every process

    def __call__(self, state: TrainState) -> tuple[np.ndarray, np.ndarray]:
        variables = sampled_variables(state, self.config)
        batch = sharding.batch_sharding(self.mesh)
        features, logits = [], []
        for start in range(0, len(self.latents), self.chunk):
            rows = self.latents[start : start + self.chunk]
            z, labels = (
                jax.make_array_from_callback(
                    part.shape, batch, lambda index, part=part: part[index]
                )
                for part in (rows, self.labels[start : start + self.chunk])
            )
            feature, logit = self._gather(
                self.extract(self.extractor_vars, self._generate(variables, z, labels))
            )
            features.append(np.asarray(feature))
            logits.append(np.asarray(logit))
        return np.concatenate(features)[: self.num], np.concatenate(logits)[: self.num]


class DigitsEvaluator:
    """digits-FID/KID/IS and mode coverage against the digits' training split."""

    def __init__(self, config: Config, modules: Modules, mesh: Mesh):
        self.reference = digits.real_features(config.image_size, config.nc, "train")[0]
        self.generated = GeneratedFeatures(
            config, modules, mesh, digits.compiled_classify, digits.load_variables()
        )
        self.seed, self.num_classes = config.seed, config.num_classes

    def __call__(self, state: TrainState, step: int) -> dict[str, float]:
        features, logits = self.generated(state)
        results = digits.digits_metrics(features, logits, self.reference, seed=self.seed)
        scalars = {
            "eval/digits_fid": results["digits-fid"],
            "eval/digits_kid": results["digits-kid"],
            "eval/digits_is": results["digits-is"],
            "eval/modes": float(results["modes"]),
            "eval/max_digit_share": max(results["digit-frequencies"]),
            **{f"eval/digits_{name}": results[f"digits-{name}"] for name in PRDC},
        }
        if self.num_classes:
            agreement = class_agreement(logits, self.generated.labels[: len(logits)], 10)
            scalars["eval/class_agreement"] = agreement["agreement"]
            scalars["eval/classes_agreeing"] = float(agreement["classes_agreeing"])
            _write(
                f"eval at step {step}: {agreement['agreement']:.1%} of the digits are the class "
                f"asked for; {agreement['classes_agreeing']}/10 classes mostly so"
            )
        _write(
            f"eval at step {step}: digits-FID {results['digits-fid']:.4f}, "
            f"digits-KID {results['digits-kid']:.5f}, "
            f"digits-IS {results['digits-is']:.3f}, modes {results['modes']}/10, "
            f"precision {results['digits-precision']:.3f}, recall {results['digits-recall']:.3f}"
        )
        return scalars


def class_agreement(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """How often the digits classifier's verdict on generated images is the class they were drawn
    for: overall, per class, and how many classes agree on more than half their images."""
    predicted = np.argmax(logits, axis=-1)
    per_class = [float(np.mean(predicted[labels == c] == c)) for c in range(num_classes)]
    return {
        "agreement": float(np.mean(predicted == labels)),
        "per_class": per_class,
        "classes_agreeing": sum(value > 0.5 for value in per_class),
    }


class InceptionEvaluator:
    """FID (against `eval_num` training images) and Inception Score with pytorch-fid's Inception."""

    def __init__(self, config: Config, modules: Modules, mesh: Mesh, weights: str):
        from jaxgan.metrics.fid import statistics_of
        from jaxgan.metrics.inception import InceptionFeatures, compiled_network, preprocess

        extractor = InceptionFeatures(
            weights, batch_size=chunk_size(config, mesh)
        )  # the generated images' shape
        source = make_source(config, split="train")
        real = np.stack([source.load(i % len(source), i) for i in range(config.eval_num)])
        self.reference = statistics_of(extractor(real))

        def extract(variables, images):
            return compiled_network()(variables, preprocess(images))

        self.generated = GeneratedFeatures(config, modules, mesh, extract, extractor.variables)

    def __call__(self, state: TrainState, step: int) -> dict[str, float]:
        from jaxgan.metrics.fid import frechet_distance, statistics_of
        from jaxgan.metrics.inception_score import inception_score

        features, logits = self.generated(state)
        fid = frechet_distance(*statistics_of(features), *self.reference)
        score = inception_score(logits)[0]
        _write(
            f"eval at step {step}: FID {fid:.3f} (Inception, {len(features)} images), "
            f"IS {score:.3f}"
        )
        return {"eval/fid": fid, "eval/is": score}


def make_training_evaluator(config: Config, modules: Modules, mesh: Mesh) -> Callable | None:
    """(state, step) -> {TensorBoard name: value}, or None when nothing can be measured for this
    data."""
    if (config.data or DEFAULT_DATA) == "digits":
        return DigitsEvaluator(config, modules, mesh)
    from jaxgan.metrics.inception_convert import ENVIRONMENT_VARIABLE

    weights = os.environ.get(ENVIRONMENT_VARIABLE)
    if not weights:
        warnings.warn(
            f"eval_every is set but data {config.data!r} has no built-in score: set "
            f"{ENVIRONMENT_VARIABLE} to pytorch-fid's Inception weights for FID and IS during "
            "training; no evaluation this run",
            stacklevel=2,
        )
        return None
    return InceptionEvaluator(config, modules, mesh, weights)


def _write(line: str) -> None:
    if jax.process_index() == 0:
        from tqdm import tqdm

        tqdm.write(line)
