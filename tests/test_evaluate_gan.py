"""`scripts/evaluate.py gan` and evaluation during training, on a short digits run and random
Inception weights.

The short run: dcgan32 with nc=1, nz=32, ngf=ndf=16, batch 32, lr 5e-4, 300 steps (about 15 s on two
cores); its digits-FID must be below half the untrained generator's.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from jaxgan import model_folder
from jaxgan.metrics.inception_convert import ENVIRONMENT_VARIABLE, WEIGHTS_URL
from jaxgan.tasks.gan.benchmark import evaluate_gan
from scripts import evaluate as evaluate_script
from tests.helpers import run_train, tiny_config

SHORT_RUN = dict(
    nz=32,
    ngf=16,
    ndf=16,
    batch_size=32,
    lr=5e-4,
    num_steps=300,
    ema_decay=0.9,
    log_every=100,
    sample_every=300,
    checkpoint_every=300,
    eval_every=300,
    eval_num=500,
)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("short_run") / "run"
    result = run_train(workdir, **SHORT_RUN)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """The same generator before any step, as a model folder (what scripts/convert.py writes)."""
    from jaxgan.state import init_state, make_modules, sampled_variables
    from jaxgan.tasks import get_task

    config = tiny_config(**SHORT_RUN)
    state = init_state(config, make_modules(config))
    folder = tmp_path_factory.mktemp("untrained") / "generator"
    model_folder.save_model(
        folder, get_task("gan").arch(config, "generator"), sampled_variables(state, config)
    )
    return folder


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """Random weights in pytorch-fid's layout (torch_ref/inception.py), as a .pth file."""
    torch = pytest.importorskip("torch")
    from torch_ref.inception import random_state_dict

    path = tmp_path_factory.mktemp("inception") / "inception.pth"
    torch.save(random_state_dict(seed=1), path)
    return path


def scalars(workdir) -> dict[str, float]:
    """{tag: last value} of the scalars in a workdir's TensorBoard event file (TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    values = {}
    for path in (workdir / "tensorboard").glob("events.out.tfevents.*"):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            length = int.from_bytes(data[offset : offset + 8], "little")
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            values.update({value.tag: value.simple_value for value in event.summary.value})
            offset += length + 16
    return values


def test_short_run_beats_half_the_untrained_digits_fid(short_run, untrained, tmp_path):
    options = dict(metric=["digits-fid", "modes"], num=500, batch_size=250)
    trained = evaluate_gan(short_run, json=str(tmp_path / "trained.json"), **options)
    before = evaluate_gan(untrained, json=str(tmp_path / "untrained.json"), **options)
    assert trained["metrics"]["digits-fid"] < 0.5 * before["metrics"]["digits-fid"]
    assert trained["metrics"]["modes"] > before["metrics"]["modes"]
    record = json.loads((tmp_path / "trained.json").read_text())
    assert record["ema"] is True and record["batch_stats"] is False and record["num_images"] == 500
    assert record["metrics"] == json.loads(json.dumps(trained["metrics"]))
    assert (
        json.loads((tmp_path / "untrained.json").read_text())["ema"] is False
    )  # a model folder has no EMA


def test_training_logs_digits_metrics_to_tensorboard(short_run):
    logged = scalars(short_run)
    assert {"eval/digits_fid", "eval/digits_kid", "eval/digits_is", "eval/modes"} <= set(logged)
    assert 0 < logged["eval/digits_fid"] < 100 and 1 <= logged["eval/digits_is"] <= 10
    assert logged["eval/modes"] == int(logged["eval/modes"]) and 1 <= logged["eval/modes"] <= 10


def test_cli_records_generator_choices_and_is_deterministic(short_run, tmp_path, capsys):
    outputs = []
    for name in ("a.json", "b.json"):
        code = evaluate_script.main(
            [
                "gan",
                "--checkpoint",
                str(short_run),
                "--metric",
                "modes",
                "--metric",
                "digits-is",
                "--num",
                "60",
                "--batch-size",
                "25",
                "--no-ema",
                "--batch-stats",
                "--json",
                str(tmp_path / name),
            ]
        )
        assert code == 0
        outputs.append(json.loads((tmp_path / name).read_text()))
    assert outputs[0] == outputs[1]
    assert outputs[0]["ema"] is False and outputs[0]["batch_stats"] is True
    assert len(outputs[0]["metrics"]["digit-frequencies"]) == 10
    table = capsys.readouterr().out
    assert (
        "| modes |" in table and "| digits-is |" in table and "BatchNorm batch statistics" in table
    )


def test_missing_inception_weights_say_where_to_get_them(short_run, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    assert (
        evaluate_script.main(
            ["gan", "--checkpoint", str(short_run), "--metric", "is", "--num", "20"]
        )
        == 1
    )
    message = capsys.readouterr().err
    assert (
        WEIGHTS_URL in message and ENVIRONMENT_VARIABLE in message and "never downloads" in message
    )
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(tmp_path / "nowhere.pth"))
    assert (
        evaluate_script.main(
            ["gan", "--checkpoint", str(short_run), "--metric", "is", "--num", "20"]
        )
        == 1
    )
    assert (
        f"{tmp_path / 'nowhere.pth'} (from ${ENVIRONMENT_VARIABLE}) does not exist"
        in capsys.readouterr().err
    )


def test_fid_kid_is_with_inception_weights_and_saved_statistics(
    short_run, inception_weights, tmp_path, monkeypatch
):
    """Random weights in pytorch-fid's layout: --data and --save-stats then --ref give the same
    statistics.

    scipy's sqrtm of a 2048x2048 product takes minutes on two busy cores, so here the distance
    records its arguments and returns a cheap stand-in; tests/test_fid.py checks `frechet_distance`
    itself.
    """
    from jaxgan.data.sources import digits_images
    from jaxgan.monitor import image_grid, save_png
    from jaxgan.tasks.gan import benchmark as report

    calls = []

    def recorded_distance(mu1, sigma1, mu2, sigma2):
        calls.append((mu1, sigma1, mu2, sigma2))
        return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2))

    monkeypatch.setattr(report, "frechet_distance", recorded_distance)
    folder = tmp_path / "real"
    for index, image in enumerate(digits_images(32, 1)[:8]):
        save_png(image_grid(image[None] / 127.5 - 1, padding=0), folder / f"{index:03d}.png")
    common = dict(num=20, batch_size=10, inception_weights=str(inception_weights))
    with pytest.warns(UserWarning, match="fewer than 2048"):
        direct = evaluate_gan(short_run, metric=["fid", "kid", "is"], data=str(folder), **common)[
            "metrics"
        ]
    assert direct["fid"] > 0 and math.isfinite(direct["kid"]) and 1 < direct["is"] <= 1008
    stats = tmp_path / "real.npz"
    with pytest.warns(UserWarning, match="fewer than 2048"):
        evaluate_gan(metric=["fid", "kid"], data=str(folder), save_stats=str(stats), **common)
    with np.load(stats) as saved:
        assert saved["mu"].shape == (2048,) and saved["sigma"].shape == (2048, 2048)
        assert saved["features"].shape == (8, 2048) and int(saved["num_images"]) == 8
    with pytest.warns(UserWarning, match="fewer than 2048"):
        from_file = evaluate_gan(short_run, metric=["fid", "kid"], ref=str(stats), **common)[
            "metrics"
        ]
    (generated, *reference), (generated_again, *from_stats) = [(c[0], c[2], c[3]) for c in calls]
    np.testing.assert_array_equal(generated, generated_again)  # the same images, the same features
    for direct_value, file_value in zip(reference, from_stats):
        np.testing.assert_array_equal(direct_value, file_value)
    assert from_file == pytest.approx(
        {"fid": direct["fid"], "kid": direct["kid"], "kid-std": direct["kid-std"]}, rel=1e-12
    )


def test_training_evaluator_uses_inception_off_digits(inception_weights, monkeypatch):
    """On data other than digits: FID against `eval_num` training images and IS, when weights are
    given."""
    from jaxgan import sharding
    from jaxgan.metrics import fid
    from jaxgan.state import init_state, make_modules
    from jaxgan.tasks.gan.evaluate import make_training_evaluator

    calls = []
    monkeypatch.setattr(
        fid, "frechet_distance", lambda *statistics: calls.append(statistics) or 1.0
    )  # no sqrtm
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(inception_weights))
    config = tiny_config(data="fake", eval_every=10, eval_num=10)
    models = make_modules(config)
    results = make_training_evaluator(config, models, sharding.make_mesh())(
        init_state(config, models), 10
    )
    assert set(results) == {"eval/fid", "eval/is"} and 1 <= results["eval/is"] <= 1008
    generated_mean, generated_covariance, real_mean, _ = calls[0]
    assert generated_mean.shape == (2048,) and generated_covariance.shape == (2048, 2048)
    assert np.abs(generated_mean - real_mean).max() > 0  # generated and training images differ


def test_training_evaluator_needs_inception_weights_off_digits(monkeypatch):
    from jaxgan import sharding
    from jaxgan.state import make_modules
    from jaxgan.tasks.gan.evaluate import make_training_evaluator

    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    config = tiny_config(data="fake", eval_every=10)
    with pytest.warns(UserWarning, match=f"set {ENVIRONMENT_VARIABLE}"):
        assert make_training_evaluator(config, make_modules(config), sharding.make_mesh()) is None


def test_bad_arguments_are_clear_errors(short_run, tmp_path):
    with pytest.raises(ValueError, match="give --ref STATS.npz or --data DIR"):
        evaluate_gan(short_run, metric=["fid"], num=10)
    with pytest.raises(ValueError, match="--checkpoint"):
        evaluate_gan(None, metric=["modes"], num=10)
    np.savez(tmp_path / "stats.npz", mu=np.zeros(2048), sigma=np.eye(2048))
    with pytest.raises(ValueError, match="KID needs the reference features"):
        evaluate_gan(
            short_run,
            metric=["kid"],
            num=10,
            ref=str(tmp_path / "stats.npz"),
            inception_weights=os.devnull,
        )
