"""Class-conditional GANs: labels from the digits and from class subfolders, a small-data subset,
conditional sampling (`--class`, one grid row per class), the class-agreement score, and the errors
a user meets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from jaxgan import trainer
from jaxgan.config import ConfigError
from jaxgan.data.images import ImageError
from jaxgan.data.pipeline import Batches
from jaxgan.data.sources import digits_images, digits_labels, make_source
from jaxgan.tasks.gan.evaluate import class_agreement
from scripts import sample as sample_cli
from tests.helpers import tiny_config

CONDITIONAL = dict(num_classes=10, num_steps=2, checkpoint_every=2, sample_every=100)


def test_digit_batches_carry_the_label_of_each_image():
    config = tiny_config(num_classes=10)
    source = make_source(config)
    batch = Batches(source, 16, 3, labels=True).batch(5)
    everything, labels = digits_images(32, 1), digits_labels()
    for image, label in zip(batch["images"], batch["labels"]):
        (matches,) = np.nonzero((everything == image).all(axis=(1, 2, 3)))
        assert label in labels[matches]
    assert batch["labels"].dtype == np.int32 and len(set(batch["labels"])) > 3


def test_max_examples_keeps_the_first_examples_and_their_labels():
    config = tiny_config(num_classes=10, max_examples=150)
    source = make_source(config)
    assert len(source) == 150 and "first 150" in source.describe()
    assert [source.label(i) for i in range(150)] == list(digits_labels()[:150])
    assert len(make_source(config, split="test")) == 297  # evaluation data stays whole
    with pytest.raises(ConfigError, match="max_examples is 2000 but .* has only 1500"):
        make_source(tiny_config(max_examples=2000))


def write_image(path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def test_class_subfolders_are_the_classes_in_sorted_order(tmp_path):
    for name, value in (("cat/a.png", 10), ("cat/deep/b.png", 20), ("ant/c.png", 30)):
        write_image(tmp_path / name, value)
    source = make_source(tiny_config(data=str(tmp_path), num_classes=2))
    labels = {source.files[i].name: source.label(i) for i in range(len(source))}
    assert labels == {"c.png": 0, "a.png": 1, "b.png": 1} and source.classes == ("ant", "cat")
    with pytest.raises(ConfigError, match="num_classes is 3 but image folder .* has 2 classes"):
        make_source(tiny_config(data=str(tmp_path), num_classes=3))


@pytest.mark.parametrize(
    "layout, message",
    [
        (["a.png", "b.png"], "has no class subfolders"),
        (["one/a.png", "loose.png"], "1 image\\(s\\) lie outside every class subfolder"),
        (["one/a.png", "two/notes.txt"], "class subfolder\\(s\\) two hold no images"),
    ],
)
def test_a_folder_that_is_not_class_subfolders_is_an_error_naming_it(tmp_path, layout, message):
    for name in layout:
        if name.endswith(".txt"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text("not an image")
        else:
            write_image(tmp_path / name, 100)
    with pytest.raises(ImageError, match=f"data folder {tmp_path}.*{message}"):
        make_source(tiny_config(data=str(tmp_path), num_classes=2))


def test_unlabelled_data_cannot_train_a_conditional_gan():
    with pytest.raises(ConfigError, match="num_classes is 10 but built-in 'photos'.* no class"):
        make_source(tiny_config(data="photos", num_classes=10))
    with pytest.raises(ConfigError, match="'num_classes' makes a class-conditional GAN"):
        tiny_config().replace(task="restore", num_classes=10)


@pytest.fixture(scope="module")
def conditional_workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("conditional") / "run"
    trainer.train(tiny_config(**CONDITIONAL), workdir)
    return workdir


def test_sample_draws_the_class_asked_for_and_rows_per_class(conditional_workdir, tmp_path, capsys):
    arrays = {}
    for label in (3, 7):
        out = tmp_path / f"class{label}.npy"
        args = ["--checkpoint", str(conditional_workdir), "--out", str(out), "--num", "4"]
        assert sample_cli.main([*args, "--class", str(label)]) == 0
        arrays[label] = np.load(out)
    assert arrays[3].shape == (4, 32, 32, 1)
    # The class changes the images (an untrained G in eval mode draws values near 0: relative).
    assert np.abs(arrays[3] - arrays[7]).max() > 0.1 * np.abs(arrays[3]).max() > 0
    grid = tmp_path / "grid.png"
    assert sample_cli.main(["--checkpoint", str(conditional_workdir), "--out", str(grid)]) == 0
    height, width = np.asarray(Image.open(grid)).shape[:2]
    assert (height, width) == (10 * 34 + 2, 6 * 34 + 2)  # 64 // 10 images in each class's row
    out = tmp_path / "bad.png"
    assert (
        sample_cli.main(
            ["--checkpoint", str(conditional_workdir), "--out", str(out), "--class", "10"]
        )
        == 1
    )
    assert "class 10 is out of range: this generator draws classes 0..9" in capsys.readouterr().err
    assert not out.exists()


def test_an_unconditional_generator_takes_no_class(trained_workdir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code = sample_cli.main(
        ["--checkpoint", str(trained_workdir), "--out", str(out), "--class", "1"]
    )
    assert code == 1 and "unconditional" in capsys.readouterr().err and not out.exists()


def test_class_agreement_is_the_share_of_verdicts_equal_to_the_class_asked_for():
    labels = np.array([0, 0, 1, 1, 2, 2])
    logits = np.eye(3)[[0, 1, 1, 1, 0, 0]] * 5.0  # verdicts 0 1 1 1 0 0
    found = class_agreement(logits, labels, 3)
    assert found["agreement"] == pytest.approx(3 / 6)
    assert found["per_class"] == [0.5, 1.0, 0.0] and found["classes_agreeing"] == 1


def test_conditional_batchnorm_takes_each_example_s_class_row_and_the_latent_alone():
    """With conditional BatchNorm, conv_0 sees z only and every bn_i has (classes, width) tables:
    an example's output is what the same model gives with that class's row as a plain BN's."""
    import jax
    import jax.numpy as jnp

    from jaxgan.models import Generator

    model = Generator(
        nz=8, ngf=4, nc=1, image_size=32, num_classes=3, class_conditioning="batchnorm"
    )
    z = jax.random.normal(jax.random.key(0), (6, 8))
    labels = jnp.array([0, 1, 2, 0, 1, 2])
    variables = model.init(jax.random.key(1), z, labels, train=False)
    params = variables["params"]
    assert "embed" not in params and params["conv_0"]["kernel"].shape[2] == 8  # (4, 4, nz, ...)
    assert params["bn_0"]["scale"].shape == (3, 16) and params["bn_1"]["bias"].shape == (3, 8)
    params = dict(params)
    for i in range(3):  # class rows far apart, so that a wrong row shows
        key, name = jax.random.key(2 + i), f"bn_{i}"
        scale = jax.random.uniform(key, params[name]["scale"].shape, minval=0.5, maxval=1.5)
        bias = jax.random.uniform(key, params[name]["bias"].shape, minval=-0.5, maxval=0.5)
        params[name] = {"scale": scale, "bias": bias}
    tables = params
    variables = {**variables, "params": tables}
    mixed = model.apply(variables, z, labels, train=False)
    alone = [model.apply(variables, z, jnp.full((6,), cls), train=False) for cls in range(3)]
    for cls in range(3):
        rows = np.asarray(labels) == cls
        np.testing.assert_allclose(mixed[rows], alone[cls][rows], atol=1e-6)
    assert np.abs(np.asarray(alone[0] - alone[1])).mean() > 0.2 * np.abs(alone[0]).mean()
    trained, _ = model.apply(variables, z, labels, train=True, mutable=["batch_stats"])
    same_class_other_z = np.abs(np.asarray(trained[0] - trained[3])).mean()
    assert same_class_other_z > 0.2 * np.abs(np.asarray(trained[0])).mean()  # z is not ignored
    with pytest.raises(ValueError, match="needs labels"):
        model.apply(variables, z, train=False)


def test_class_conditioning_is_checked():
    with pytest.raises(ConfigError, match="'class_conditioning' must be one of .*embedding"):
        tiny_config().replace(num_classes=10, class_conditioning="film")
    with pytest.raises(ConfigError, match="'class_conditioning' is 'batchnorm' but num_classes"):
        tiny_config().replace(class_conditioning="batchnorm")
    config = tiny_config().replace(num_classes=10, class_conditioning="batchnorm")
    assert config.class_conditioning == "batchnorm"
