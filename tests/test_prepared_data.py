"""Prepared data sets: made once from a folder or built-in data, trained from with the very same
batches and weights; damaged, incomplete, foreign or mismatched sets refused; an interrupted
preparation resumed."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxgan.config import Config
from jaxgan.data import prepared
from jaxgan.data.fingerprint import fingerprint
from jaxgan.data.pipeline import Batches
from jaxgan.data.prepared import INFO, PreparedDataError, PreparedSource, prepare
from jaxgan.data.sources import Digits, Folder, make_source
from tests.helpers import final_arrays, tiny_config

SIZE = 32


def write_class_folder(folder: Path) -> int:
    """Two class subfolders of PNGs: colour and grayscale, 8- and 16-bit, of odd sizes (so cropped
    and resized)."""
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (folder / name).mkdir(parents=True)
    shapes = [(40, 60, 3), (50, 30), (33, 33, 3), (64, 64, 3), (20, 70, 3), (36, 36)]
    for i, shape in enumerate(shapes):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(
            folder / "cats" / f"{i}.png"
        )
    for i, shape in enumerate([(48, 48), (30, 50), (40, 40)]):  # 16-bit grayscale
        Image.fromarray(rng.integers(0, 65536, shape, dtype=np.uint16)).save(
            folder / "dogs" / f"g{i}.png"
        )
    for i, shape in enumerate([(45, 45, 3), (32, 32, 3)]):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(
            folder / "dogs" / f"{i}.png"
        )
    return 11


def with_corrupt_file(clean: Path, folder: Path) -> Path:
    """A copy of `clean` plus one file that cannot be decoded (sorted among the others)."""
    shutil.copytree(clean, folder)
    (folder / "dogs" / "1b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut off")
    return folder


def quiet_prepare(*args, **kwargs) -> tuple[dict, list[str], list[str]]:
    """prepare(), returning (info, log lines, warnings)."""
    lines = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = prepare(*args, progress=False, log=lines.append, **kwargs)
    return info, lines, [str(w.message) for w in caught]


def assert_same_batches(a, b, steps: int = 8, batch_size: int = 4, data_seed: int = 5) -> None:
    """The same global batches (images and latents), and the same rows per process, for `steps`
    steps."""
    for step in range(steps):
        whole = [Batches(s, batch_size, data_seed, latent_seed=1, nz=3).batch(step) for s in (a, b)]
        for key in whole[0]:
            np.testing.assert_array_equal(whole[0][key], whole[1][key])
        for rows in (slice(0, batch_size // 2), slice(batch_size // 2, batch_size)):
            halves = [
                Batches(s, batch_size, data_seed, rows=rows).batch(step)["images"] for s in (a, b)
            ]
            np.testing.assert_array_equal(halves[0], halves[1])
            np.testing.assert_array_equal(halves[0], whole[0]["images"][rows])


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """A clean class folder, a copy with a corrupt file, and the prepared sets of both (nc 3 and
    1)."""
    root = tmp_path_factory.mktemp("prepared")
    clean = root / "clean"
    write_class_folder(clean)
    corrupt = with_corrupt_file(clean, root / "corrupt")
    paths = {"clean": clean, "corrupt": corrupt}
    for name, nc in (("clean", 3), ("clean", 1), ("corrupt", 3)):
        paths[f"{name}{nc}"] = root / f"{name}{nc}"
        quiet_prepare(str(paths[name]), paths[f"{name}{nc}"], SIZE, nc, num_shards=3)
    return paths


def test_json_records_size_channels_count_labels_fingerprint_source_and_skipped(tmp_path, folders):
    info, lines, caught = quiet_prepare(
        str(folders["corrupt"]), tmp_path / "out", SIZE, 3, num_shards=3
    )
    assert json.loads((tmp_path / "out" / INFO).read_text()) == info
    assert (info["format"], info["version"], info["image_size"], info["nc"], info["count"]) == (
        prepared.FORMAT,
        prepared.FORMAT_VERSION,
        SIZE,
        3,
        11,
    )
    assert [shard["file"] for shard in info["shards"]] == [
        f"data-{k:05d}-of-00003.array_record" for k in range(3)
    ]
    assert sum(shard["count"] for shard in info["shards"]) == 11
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [INFO, "labels.npy"] + [shard["file"] for shard in info["shards"]]
    )
    assert info["labels"]["names"] == ["cats", "dogs"] and info["labels"]["counts"] == [6, 5]
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "labels.npy"), [0] * 6 + [1] * 5)
    assert (
        len(info["fingerprint"]) == 64
        and info["fingerprint"]
        == json.loads((folders["corrupt3"] / INFO).read_text())["fingerprint"]
    )  # content, not place or time
    assert info["source"]["kind"] == "folder" and info["source"]["data"] == str(
        folders["corrupt"].resolve()
    )
    assert info["source"]["fingerprint"] == fingerprint(
        Folder(str(folders["corrupt"].resolve()), SIZE, 3)
    )
    assert [Path(item["file"]).name for item in info["skipped"]] == ["1b_broken.png"]
    assert len(caught) == 1 and "1b_broken.png" in caught[0]
    assert "1 unreadable skipped" in lines[-1] and "1b_broken.png" in lines[-1]
    assert not prepared.staging_folder((tmp_path / "out").resolve()).exists()


def test_prepared_copy_gives_the_folders_batches_without_its_unreadable_files(folders):
    clean = Folder(str(folders["clean"]), SIZE, 3)
    for name in ("clean3", "corrupt3"):  # order: the folder's sorted files minus the unreadable one
        source = make_source(Config(data=str(folders[name]), image_size=SIZE, nc=3))
        assert isinstance(source, PreparedSource) and len(source) == len(clean) == 11
        for index in range(len(source)):
            np.testing.assert_array_equal(source.load(index, index), clean.load(index, index))
        assert_same_batches(source, clean)
    grey = make_source(Config(data=str(folders["clean1"]), image_size=SIZE, nc=1))
    assert_same_batches(
        grey, Folder(str(folders["clean"]), SIZE, 1)
    )  # 16-bit and colour converted as training does
    batches = Batches(grey, 4, 5, latent_seed=1, nz=3)  # grain's threads share the readers
    for step, batch in enumerate(batches.iterate(0, 30, threads=8)):
        np.testing.assert_array_equal(batch["images"], batches.batch(step)["images"])


def test_prepared_digits_match_the_built_in_digits(tmp_path):
    info, _, _ = quiet_prepare("digits", tmp_path / "digits", SIZE, 1, num_shards=2)
    assert info["count"] == 1500 and info["labels"]["names"] == [str(d) for d in range(10)]
    assert info["source"]["data"] == "digits" and info["source"]["split"] == "train"
    source = make_source(Config(data=str(tmp_path / "digits"), image_size=SIZE, nc=1))
    digits = Digits(SIZE, 1)
    assert_same_batches(source, digits, steps=4, batch_size=16)
    names, labels = source.labels()
    from jaxgan.data.sources import digits_labels

    np.testing.assert_array_equal(labels, digits_labels()[:1500])
    conditional = make_source(
        Config(data=str(tmp_path / "digits"), image_size=SIZE, nc=1, num_classes=10)
    )
    assert [conditional.label(i) for i in (0, 7, 1499)] == [digits.label(i) for i in (0, 7, 1499)]
    with pytest.raises(PreparedDataError, match="photos"):
        prepare("photos", tmp_path / "photos", SIZE, 3, progress=False, log=lambda line: None)


def test_float64_training_from_the_folder_and_its_prepared_copy_ends_in_identical_weights(
    tmp_path, folders
):
    from jaxgan import trainer

    config = tiny_config(
        dtype="float64",
        batch_size=4,
        num_steps=4,
        checkpoint_every=4,
        sample_every=100,
        log_every=2,
    )
    trainer.train(config.replace(data=str(folders["clean"])), tmp_path / "folder")
    trainer.train(config.replace(data=str(folders["clean1"])), tmp_path / "prepared")
    expected, got = final_arrays(tmp_path / "folder"), final_arrays(tmp_path / "prepared")
    assert expected.keys() == got.keys() and any(
        value.dtype == np.float64 for value in expected.values()
    )
    for key in expected:
        np.testing.assert_array_equal(expected[key], got[key], err_msg=key)
    info = json.loads((tmp_path / "prepared" / "run.json").read_text())
    assert info["data"]["count"] == 11 and "prepared data set" in info["data"]["source"]


def test_fingerprint_follows_the_content_not_the_place(tmp_path, folders):
    moved = tmp_path / "moved"
    shutil.copytree(folders["clean3"], moved)
    here, there = (
        make_source(Config(data=str(p), image_size=SIZE, nc=3)) for p in (folders["clean3"], moved)
    )
    assert fingerprint(here) == fingerprint(there)
    other = make_source(Config(data=str(folders["clean1"]), image_size=SIZE, nc=1))
    assert fingerprint(other)["hash"] != fingerprint(here)["hash"]


def test_truncated_shard_is_refused_before_the_first_step_naming_the_file(tmp_path, folders):
    from jaxgan import trainer

    copy = tmp_path / "copy"
    shutil.copytree(folders["clean1"], copy)
    shard = copy / "data-00001-of-00003.array_record"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(PreparedDataError, match=f"{shard}.*truncated"):
        make_source(Config(data=str(copy), image_size=SIZE, nc=1))
    with pytest.raises(PreparedDataError, match="data-00001-of-00003.array_record"):
        trainer.train(tiny_config(data=str(copy), num_steps=2), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    shard.unlink()
    with pytest.raises(PreparedDataError, match=f"{shard}.*missing"):
        make_source(Config(data=str(copy), image_size=SIZE, nc=1))


def test_an_unreadable_record_is_skipped_with_a_warning_naming_shard_and_record(tmp_path, folders):
    copy = tmp_path / "copy"
    shutil.copytree(folders["clean3"], copy)
    source = make_source(Config(data=str(copy), image_size=SIZE, nc=3))
    shard, record = source.locate(5)
    original = source.load(5, 5).tobytes()
    path = source.shards[shard]
    data = bytearray(path.read_bytes())
    offset = data.find(original)
    assert offset > 0
    data[offset + 100] ^= 0xFF  # same size: only the record's checksum can tell
    path.write_bytes(bytes(data))
    damaged = make_source(Config(data=str(copy), image_size=SIZE, nc=3))
    batches = Batches(damaged, 11, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = batches.batch(0)["images"]  # one epoch: every example once
    messages = [str(w.message) for w in caught]
    assert (
        len(messages) == 1
        and f"shard {path}, record {record}" in messages[0]
        and "1 skipped" in messages[0]
    )
    assert list(batches.skipped) == [5] and images.shape == (11, SIZE, SIZE, 3)


def test_missing_newer_or_foreign_json_is_refused(tmp_path, folders):
    copy = tmp_path / "copy"
    shutil.copytree(folders["clean3"], copy)
    config = Config(data=str(copy), image_size=SIZE, nc=3)
    info = json.loads((copy / INFO).read_text())
    (copy / INFO).write_text(json.dumps({**info, "version": prepared.FORMAT_VERSION + 1}))
    with pytest.raises(
        PreparedDataError, match=f"format version {prepared.FORMAT_VERSION + 1}.*newer jaxgan"
    ):
        make_source(config)
    (copy / INFO).write_text("{not json")
    with pytest.raises(PreparedDataError, match="cannot read it"):
        make_source(config)
    (copy / INFO).write_text(json.dumps({"format": "something else", "version": 1}))
    with pytest.raises(PreparedDataError, match="not a jaxgan prepared data set"):
        make_source(config)
    (copy / INFO).unlink()
    with pytest.raises(PreparedDataError, match=f"{copy} holds ArrayRecord shards but no {INFO}"):
        make_source(config)


def test_another_image_size_or_channel_count_is_refused(folders):
    for image_size, nc in ((64, 3), (SIZE, 1)):
        with pytest.raises(
            PreparedDataError,
            match=f"prepared at {SIZE}x{SIZE} with 3 channel.*--image-size {image_size} --nc {nc}",
        ):
            make_source(Config(data=str(folders["clean3"]), image_size=image_size, nc=nc))


def test_interrupted_preparation_leaves_nothing_complete_and_a_rerun_resumes(
    tmp_path, folders, monkeypatch
):
    out = tmp_path / "out"
    real, calls = prepared._write_shard, []

    def dies_on_the_second_shard(*args, **kwargs):
        calls.append(args[2].name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill between shards, or Ctrl-C during one
        return real(*args, **kwargs)

    monkeypatch.setattr(prepared, "_write_shard", dies_on_the_second_shard)
    with pytest.raises(KeyboardInterrupt):
        quiet_prepare(str(folders["corrupt"]), out, SIZE, 3, num_shards=3)
    assert not out.exists()  # nothing at the output: no set that looks complete
    staging = prepared.staging_folder(out.resolve())
    assert staging.name.startswith(".") and not list(staging.rglob(INFO))
    (staging / "data" / ".data-00001-of-00003.array_record.x.tmp").write_bytes(
        b"half"
    )  # a write a kill cut off
    with pytest.raises(Exception, match="does not exist"):
        make_source(Config(data=str(out), image_size=SIZE, nc=3))
    monkeypatch.setattr(prepared, "_write_shard", real)

    calls.clear()
    info, lines, caught = quiet_prepare(str(folders["corrupt"]), out, SIZE, 3, num_shards=3)
    assert "resuming: keeping 1 of 3 shard(s)" in lines[0]
    assert info == json.loads((folders["corrupt3"] / INFO).read_text())  # as if never interrupted
    assert not staging.exists() and not [p for p in out.iterdir() if p.name.startswith(".")]
    assert_same_batches(
        make_source(Config(data=str(out), image_size=SIZE, nc=3)),
        Folder(str(folders["clean"]), SIZE, 3),
        steps=3,
    )
    _, lines, _ = quiet_prepare(str(folders["corrupt"]), out, SIZE, 3, num_shards=3)
    assert "nothing to do" in lines[0]


def test_other_arguments_restart_and_an_existing_output_needs_force(tmp_path, folders, monkeypatch):
    out = tmp_path / "out"
    real = prepared._write_shard

    def dies(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(prepared, "_write_shard", dies)
    with pytest.raises(RuntimeError):
        quiet_prepare(str(folders["clean"]), out, SIZE, 3, num_shards=3)
    monkeypatch.setattr(prepared, "_write_shard", real)
    info, lines, _ = quiet_prepare(str(folders["clean"]), out, SIZE, 3, num_shards=2)
    assert "restarting" in lines[0] and len(info["shards"]) == 2
    assert (
        info["fingerprint"] == json.loads((folders["clean3"] / INFO).read_text())["fingerprint"]
    )  # not sharding
    with pytest.raises(FileExistsError, match="other arguments.*--force"):
        quiet_prepare(str(folders["clean"]), out, SIZE, 1)
    info, _, _ = quiet_prepare(str(folders["clean"]), out, SIZE, 1, force=True)
    assert info["nc"] == 1 and len(make_source(Config(data=str(out), image_size=SIZE, nc=1))) == 11


def test_command_line(tmp_path, folders, capsys):
    from scripts.prepare_data import main

    out = tmp_path / "out"
    assert (
        main(
            [
                str(folders["corrupt"]),
                str(out),
                "--image-size",
                str(SIZE),
                "--num-shards",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    error = capsys.readouterr().err
    assert (
        "warning: skipping unreadable" in error
        and "1b_broken.png" in error
        and "1 unreadable skipped" in error
    )
    assert json.loads((out / INFO).read_text())["count"] == 11
    assert main([str(folders["clean"]), str(out), "--image-size", str(SIZE), "--quiet"]) == 1
    assert "--force" in capsys.readouterr().err
    assert (
        main([str(tmp_path / "missing"), str(tmp_path / "x"), "--image-size", "32", "--quiet"]) == 1
    )
    assert "does not exist" in capsys.readouterr().err
