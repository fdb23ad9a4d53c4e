"""Data sources: random access to examples as uint8 (S, S, nc) arrays.

Built-in data ship inside pip packages, so nothing is downloaded: `digits` (scikit-learn's 1,797
handwritten digits, upscaled), `photos` (random crops of the photographs bundled in scikit-image's
and scikit-learn's wheels) and `fake` (random pixels, for benchmarks). Anything else
is a folder of images. `load(index, position)` may use `position` (the example's place in the global
stream) to key random crops and flips, so that they are the same for any device or process count.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from jaxgan.config import Config, ConfigError
from jaxgan.data import images
from jaxgan.data.order import STREAM_EXAMPLE, generator

DIGITS_TEST = 297  # the last 297 of the 1,797 digits are held out (so 1,500 train)
PHOTOS_TRAIN = (
    "astronaut",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
    "china",
    "flower",
)
# Grayscale photographs: trained on by 1-channel runs only (a colour restorer learns colour images).
PHOTOS_TRAIN_GRAY = (
    "camera",
    "coins",
    "moon",
    "page",
    "text",
    "horse",
    "clock",
    "brick",
    "grass",
    "gravel",
)
PHOTOS_TEST = ("coffee", "chelsea", "rocket")
# The validation split of the photos: the right-most fifth of every training photograph, never
# cropped for training (the train split crops the other four fifths).
VALIDATION_FRACTION = 0.2
DEFAULT_DATA = "digits"


class Source:
    """Random access to a data set's examples (and, for labelled data, their classes)."""

    name: str = ""
    num_classes: int = 0  # 0: no labels

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int, position: int) -> np.ndarray:
        raise NotImplementedError

    def label(self, index: int) -> int:
        """The class of example `index` (0 .. num_classes - 1)."""
        raise ValueError(f"{self.describe()} has no class labels")

    def describe(self) -> str:
        return f"{self.name}: {len(self)} examples"

    def with_data_seed(self, data_seed: int) -> Source:
        """The source that a config with data seed `data_seed` reads (for a sweep's runs, which
        differ in it): itself, unless its examples depend on the data seed."""
        return self


@functools.lru_cache(maxsize=8)
def digits_images(image_size: int, nc: int) -> np.ndarray:
    """All 1,797 digits as uint8 (1797, S, S, nc): white strokes on black, upscaled bicubically."""
    from sklearn.datasets import load_digits

    digits = load_digits().images.astype(np.float32) / 16  # (1797, 8, 8) in [0, 1]
    resized = np.stack([images.resize(d[:, :, None], image_size, image_size) for d in digits])
    return np.repeat(images.to_uint8(resized), nc, axis=-1)


def digits_labels() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().target


def split_range(total: int, test: int, split: str) -> range:
    if split == "validation":
        raise ValueError(
            "the built-in digits have no validation split (train, test or all); the photos do"
        )
    return {
        "train": range(0, total - test),
        "test": range(total - test, total),
        "all": range(total),
    }[split]


class Digits(Source):
    name = "digits"
    num_classes = 10

    def __init__(self, image_size: int, nc: int, split: str = "train"):
        all_images = digits_images(image_size, nc)
        self.indices = split_range(len(all_images), DIGITS_TEST, split)
        self.images = all_images[self.indices.start : self.indices.stop]
        self.labels = digits_labels()[self.indices.start : self.indices.stop]
        self.split = split

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int, position: int) -> np.ndarray:
        return self.images[index]

    def label(self, index: int) -> int:
        return int(self.labels[index])

    def describe(self) -> str:
        return (
            f"built-in 'digits' ({self.split} split): {len(self)} of scikit-learn's handwritten "
            f"digits, upscaled from 8x8 to {self.images.shape[1]}x{self.images.shape[1]}"
        )


@functools.lru_cache(maxsize=16)
def photo(name: str) -> np.ndarray:
    """One bundled colour photograph, uint8 HWC (from scikit-learn or scikit-image, never
    fetched)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    image = getattr(skimage.data, name)()
    image = image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, ...)
    image = image.astype(np.uint8) * 255 if image.dtype == bool else image  # horse is binary
    return image[..., None] if image.ndim == 2 else image  # grayscale as (H, W, 1)


def photo_names(split: str, nc: int) -> tuple[str, ...]:
    """The photographs of a split: the test split's three, or the training photographs (colour,
    and for 1-channel runs the grayscale ones too) whose train or validation regions are used."""
    training = PHOTOS_TRAIN + (PHOTOS_TRAIN_GRAY if nc == 1 else ())
    return {
        "train": training,
        "validation": training,
        "test": PHOTOS_TEST,
        "all": training + PHOTOS_TEST,
    }[split]


def photo_region(name: str, split: str) -> np.ndarray:
    """The part of a photograph a split may crop: for a training photograph, its left four fifths
    (train) or its right-most fifth (validation); otherwise the whole photograph."""
    image = photo(name)
    if name in PHOTOS_TEST or split in ("test", "all"):
        return image
    edge = image.shape[1] - int(round(VALIDATION_FRACTION * image.shape[1]))
    return image[:, :edge] if split == "train" else image[:, edge:]


class Photos(Source):
    """Random square crops, half at native scale (side S) and half downscaled (side S to 2S, at most
    the photo's), resized to S, randomly flipped."""

    name = "photos"

    def __init__(self, image_size: int, nc: int, split: str = "train", seed: int = 0):
        self.names = photo_names(split, nc)
        self.image_size, self.nc, self.seed, self.split = image_size, nc, seed, split

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int, position: int) -> np.ndarray:
        rng = generator(self.seed, STREAM_EXAMPLE, position)
        return random_crop(
            photo_region(self.names[index], self.split), self.image_size, self.nc, rng
        )

    def describe(self) -> str:
        return (
            f"built-in 'photos' ({self.split} split): random {self.image_size}x{self.image_size} "
            f"crops of {', '.join(self.names)}"
        )

    def with_data_seed(self, data_seed: int) -> Photos:
        """The crops and flips are keyed by the data seed: the same photos cropped with
        `data_seed`'s."""
        return Photos(self.image_size, self.nc, self.split, data_seed)


def random_crop(
    image: np.ndarray,
    size: int,
    nc: int,
    rng: np.random.Generator,
    max_scale: float = 2.0,
    flip: bool = True,
) -> np.ndarray:
    """A random square crop, resized to `size`, maybe mirrored: of side `size` (native scale) half
    the time, otherwise of side in [size, max_scale*size]."""
    height, width = image.shape[:2]
    side = int(rng.integers(size, max(size, min(int(max_scale * size), height, width)) + 1))
    side = size if max_scale > 1 and rng.random() < 0.5 else side
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    crop = images.to_channels(images.to_unit(image[top : top + side, left : left + side]), nc)
    crop = images.to_uint8(images.resize(crop, size, size))
    return crop[:, ::-1] if flip and rng.random() < 0.5 else crop


class Fake(Source):
    """Uniformly random pixels, the same for a given index: for benchmarks that must not wait on
    data."""

    name = "fake"

    def __init__(self, image_size: int, nc: int, size: int = 10_000):
        self.shape, self.size = (image_size, image_size, nc), size
        self.pool = np.random.default_rng(0).integers(0, 256, (64,) + self.shape, dtype=np.uint8)

    def __len__(self) -> int:
        return self.size

    def load(self, index: int, position: int) -> np.ndarray:
        return self.pool[index % len(self.pool)]


class Folder(Source):
    """Image files under a folder, recursively: centre-cropped and resized to S, converted to nc
    channels. With `classes`, each subfolder is a class (torchvision's ImageFolder convention:
    classes in sorted order of their names, images anywhere below their subfolder)."""

    def __init__(self, folder: str, image_size: int, nc: int, classes: bool = False):
        self.folder = Path(folder)
        self.files = images.list_images(self.folder)
        self.name, self.image_size, self.nc = str(folder), image_size, nc
        self.classes: tuple[str, ...] = ()
        if classes:
            self.classes, self.labels = class_labels(self.folder, self.files)
            self.num_classes = len(self.classes)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int, position: int) -> np.ndarray:
        path = self.files[index]
        return images.prepare(images.read_image(path), self.image_size, self.nc, name=str(path))

    def label(self, index: int) -> int:
        if not self.classes:
            return super().label(index)
        return int(self.labels[index])

    def describe(self) -> str:
        classes = f" in {self.num_classes} classes" if self.classes else ""
        return f"image folder {self.folder}: {len(self)} files{classes}"


def class_labels(folder: Path, files: list[Path]) -> tuple[tuple[str, ...], np.ndarray]:
    """(class names, each file's class) of a folder whose subfolders are the classes; a folder
    without class subfolders, a class without images or an image outside every class is an error
    naming the folder."""
    classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir()))
    if not classes:
        raise images.ImageError(
            f"data folder {folder} has no class subfolders: conditional training reads one class "
            "per subfolder (FOLDER/CLASS/IMAGE, as torchvision's ImageFolder)"
        )
    parts = [path.relative_to(folder).parts for path in files]
    outside = [path for path, part in zip(files, parts) if len(part) < 2]
    if outside:
        raise images.ImageError(
            f"data folder {folder}: {len(outside)} image(s) lie outside every class subfolder "
            f"(e.g. {outside[0].name}); move them into one of {', '.join(classes)}"
        )
    index = {name: i for i, name in enumerate(classes)}
    labels = np.array([index[part[0]] for part in parts], np.int64)
    empty = [name for i, name in enumerate(classes) if not np.any(labels == i)]
    if empty:
        raise images.ImageError(
            f"data folder {folder}: class subfolder(s) {', '.join(empty)} hold no images"
        )
    return classes, labels


class Subset(Source):
    """The first `count` examples of a source (`max_examples`: small-data experiments)."""

    def __init__(self, source: Source, count: int):
        self.source, self.count = source, count
        self.name, self.num_classes = source.name, source.num_classes

    def __len__(self) -> int:
        return self.count

    def load(self, index: int, position: int) -> np.ndarray:
        return self.source.load(index, position)

    def label(self, index: int) -> int:
        return self.source.label(index)

    def describe(self) -> str:
        return f"the first {self.count} examples of {self.source.describe()}"

    def with_data_seed(self, data_seed: int) -> Subset:
        return Subset(self.source.with_data_seed(data_seed), self.count)


def make_source(config: Config, split: str | None = None) -> Source:
    """The data set a config names (`config.data`; "" = the built-in default, digits; a folder
    holding prepared.json is a prepared set, jaxgan.data.prepared), with its labels when the config
    is class-conditional. The training data (no `split` given) keeps its first `max_examples`."""
    source = data_source(config, split or config.data_split)
    if config.num_classes and source.num_classes != config.num_classes:
        raise ConfigError(
            f"num_classes is {config.num_classes} but {source.describe()} has "
            + (f"{source.num_classes} classes" if source.num_classes else "no class labels")
        )
    if config.max_examples and split is None:
        if config.max_examples > len(source):
            raise ConfigError(
                f"max_examples is {config.max_examples} but {source.describe()} has only "
                f"{len(source)}"
            )
        source = Subset(source, config.max_examples)
    return source


def data_source(config: Config, split: str) -> Source:
    data = config.data or DEFAULT_DATA
    if data == "digits":
        return Digits(config.image_size, config.nc, split)
    if data == "photos":
        return Photos(config.image_size, config.nc, split, config.resolved_data_seed)
    if data == "fake":
        return Fake(config.image_size, config.nc)
    from jaxgan.data import prepared

    if prepared.is_prepared(
        data
    ):  # a folder made by scripts/prepare_data.py (or a broken copy: refused)
        return prepared.PreparedSource(data, config.image_size, config.nc)
    return Folder(data, config.image_size, config.nc, classes=config.num_classes > 0)
