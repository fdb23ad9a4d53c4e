"""Image-quality metrics: FID, KID and Inception Score as pytorch-fid and OpenAI compute them, the
download-free digits metrics, precision/recall/density/coverage, and PSNR/SSIM
(`jaxgan.metrics.image`).

Names load on first use, so importing one submodule does not build the others.
"""

from __future__ import annotations

_EXPORTS = {
    "InceptionFeatures": "inception",
    "frechet_distance": "fid",
    "FeatureStatistics": "fid",
    "statistics_of": "fid",
    "save_statistics": "fid",
    "load_statistics": "fid",
    "kernel_inception_distance": "kid",
    "InceptionScore": "inception_score",
    "inception_score": "inception_score",
    "DigitsClassifier": "digits",
    "digits_metrics": "digits",
    "class_histogram": "digits",
    "modes_covered": "digits",
    "evaluate_gan": "jaxgan.tasks.gan.benchmark",
    "make_training_evaluator": "jaxgan.tasks.gan.evaluate",
    "precision_recall_density_coverage": "prdc",
    "memorisation": "prdc",
    "psnr": "image",
    "ssim": "image",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        module = _EXPORTS[name]
        return getattr(
            importlib.import_module(module if "." in module else f"jaxgan.metrics.{module}"), name
        )
    raise AttributeError(f"module 'jaxgan.metrics' has no attribute {name!r}")
