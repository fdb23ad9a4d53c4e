"""Prepared data sets: examples decoded, centre-cropped and resized once, stored as ArrayRecord
shards of raw uint8.

A folder of JPEGs costs a decode, a crop and a bicubic resize per image per epoch; a prepared set
costs a read of S*S*nc bytes. `prepare` writes one from any position-independent source (an image
folder, `digits`, `fake`) with the very `load` that training uses, so its examples are bit for bit
the source's. Layout of a prepared folder:

  prepared.json                          format, version, image size, channels, count, shards,
                                         labels, fingerprint
  data-00000-of-00004.array_record ...   one record per example: its raw uint8 (S, S, nc) bytes,
                                         in order
  labels.npy                             int64 (count,) class indices, when the source has classes

The examples' order is the source's: a folder's sorted file order minus the files that could not be
read (named in the JSON). So a folder without unreadable files trains identically from its prepared
copy; with unreadable files, identically to the folder with them removed. Preparation is resumable
and atomic: it works in a hidden folder beside the output (`.OUT.partial`), shard by shard, and
renames the finished set into place last, so a crash never leaves a set that looks complete, and the
same command run again keeps the shards already written.
"""

from __future__ import annotations

import bisect
import collections
import concurrent.futures
import hashlib
import itertools
import json
import math
import os
import shutil
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from jaxgan.atomic import atomic_path
from jaxgan.data.sources import Source

INFO = "prepared.json"
LABELS = "labels.npy"
FORMAT = "jaxgan-prepared"
FORMAT_VERSION = 1
SUFFIX = ".array_record"
WRITER_OPTIONS = (
    "group_size:1,uncompressed"  # one record per chunk: random access reads just that record
)
READER_OPTIONS = (
    "readahead_buffer_size:0,max_parallelism:0"  # array_record's setting for random access
)
SHARD_BYTES = (
    256 * 2**20
)  # the default shard size: small enough that a resumed preparation redoes little
BUILT_IN = (
    "digits",
    "fake",
)  # built-in data that can be prepared ("photos" draws its crops at training time)


class PreparedDataError(ValueError):
    """A prepared data set that cannot be used (or made); the message names the folder or file."""


def is_prepared(folder: str | os.PathLike) -> bool:
    """Whether `folder` looks like a prepared set: it holds prepared.json or ArrayRecord shards
    (complete or not)."""
    folder = Path(folder)
    return folder.is_dir() and ((folder / INFO).is_file() or any(folder.glob(f"*{SUFFIX}")))


def read_info(folder: str | os.PathLike) -> dict[str, Any]:
    """A prepared set's JSON, checked: refused with a message when missing, unreadable or of a newer
    format."""
    folder = Path(folder)
    path = folder / INFO
    if not path.is_file():
        raise PreparedDataError(
            f"{folder} holds ArrayRecord shards but no {INFO}: it is not a complete jaxgan "
            "prepared data set (a preparation that did not finish, or a partial copy); run "
            "scripts/prepare_data.py again to make it"
        )
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PreparedDataError(
            f"{path}: cannot read it ({error}); prepare the data set again"
        ) from error
    if (
        not isinstance(info, dict)
        or info.get("format") != FORMAT
        or not isinstance(info.get("version"), int)
    ):
        raise PreparedDataError(
            f"{path} is not a jaxgan prepared data set description (format {FORMAT!r} expected)"
        )
    if info["version"] > FORMAT_VERSION:
        raise PreparedDataError(
            f"{path} is format version {info['version']} (a newer jaxgan); this one reads "
            f"version {FORMAT_VERSION}: upgrade jaxgan or prepare the data set again with this one"
        )
    return info


def _open_reader(path: Path) -> Any:
    from array_record.python.array_record_module import ArrayRecordReader

    return ArrayRecordReader(str(path), READER_OPTIONS, file_reader_buffer_size=32768)


class PreparedSource(Source):
    """A prepared set's examples, random access: example i is record i of the shards laid end to
    end.

    Every shard is checked when the source is made (its size against the JSON's, its record count),
    so a truncated or damaged shard is refused before the first step. The readers are array_record's
    thread-safe ones, one per shard, shared by grain's threads; a process reads only the records of
    the rows it loads.
    """

    def __init__(self, folder: str | os.PathLike, image_size: int, nc: int):
        self.folder = Path(folder)
        info = read_info(self.folder)
        if (info["image_size"], info["nc"]) != (image_size, nc):
            raise PreparedDataError(
                f"{self.folder} was prepared at {info['image_size']}x{info['image_size']} "
                f"with {info['nc']} channel(s), but the config asks for {image_size}x{image_size} "
                f"with {nc}: set --config.image_size={info['image_size']} "
                f"--config.nc={info['nc']}, or prepare the source again "
                f"with --image-size {image_size} --nc {nc}"
            )
        self.info, self.image_size, self.nc, self.name = info, image_size, nc, str(folder)
        self.shape = (image_size, image_size, nc)
        self.record_bytes = int(np.prod(self.shape))
        self.shards = [self.folder / shard["file"] for shard in info["shards"]]
        self.counts = [int(shard["count"]) for shard in info["shards"]]
        self.starts = [
            0,
            *np.cumsum(self.counts).tolist(),
        ]  # example index of each shard's first record
        if self.starts[-1] != info["count"] or info["count"] < 1:
            raise PreparedDataError(
                f"{self.folder / INFO}: its shards hold {self.starts[-1]} records, it says "
                f"{info['count']}; prepare the data set again"
            )
        self._lock = threading.Lock()
        self._readers: dict[int, Any] = {}
        for shard, (path, expected) in enumerate(zip(self.shards, info["shards"])):
            size = path.stat().st_size if path.is_file() else None
            if size != expected["bytes"]:
                found = "is missing" if size is None else f"has {size:,} bytes"
                raise PreparedDataError(
                    f"shard {path} {found}, but {INFO} records {expected['bytes']:,}: the prepared "
                    "set is truncated or damaged (an interrupted copy?); copy or prepare it again"
                )
            if self.counts[shard]:
                self._reader(shard)
        classes = self.labels()  # class subfolders (or digits) as labels: conditional training
        self.num_classes = len(classes[0]) if classes else 0
        self.class_indices = classes[1] if classes else None

    def __len__(self) -> int:
        return self.info["count"]

    def label(self, index: int) -> int:
        if self.class_indices is None:
            return super().label(index)
        return int(self.class_indices[index])

    def __getstate__(self) -> dict[str, Any]:  # readers do not pickle: reopened on first use
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_readers")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock(), _readers={})

    def _reader(self, shard: int) -> Any:
        reader = self._readers.get(shard)
        if reader is None:
            with self._lock:
                reader = self._readers.get(shard)
                if reader is None:
                    reader = _open_reader(self.shards[shard])
                    if not reader.ok() or reader.num_records() != self.counts[shard]:
                        raise PreparedDataError(
                            f"shard {self.shards[shard]} cannot be read as an ArrayRecord file of "
                            f"{self.counts[shard]:,} records (it has {reader.num_records():,}): "
                            "the prepared set is damaged; copy or prepare it again"
                        )
                    self._readers[shard] = reader
        return reader

    def locate(self, index: int) -> tuple[int, int]:
        """Example index -> (shard, record within the shard)."""
        if not 0 <= index < len(self):
            raise IndexError(f"example {index} of a prepared set of {len(self)}")
        shard = bisect.bisect_right(self.starts, index) - 1
        return shard, index - self.starts[shard]

    def load(self, index: int, position: int) -> np.ndarray:
        shard, record = self.locate(index)
        try:
            data = self._reader(shard).read([record])[0]
        except Exception as error:  # riegeli's checksum catches a damaged record
            raise PreparedDataError(
                f"shard {self.shards[shard]}, record {record}: unreadable ({error})"
            ) from error
        if len(data) != self.record_bytes:
            raise PreparedDataError(
                f"shard {self.shards[shard]}, record {record}: {len(data)} bytes, expected "
                f"{self.record_bytes} for {self.shape}"
            )
        return np.frombuffer(data, np.uint8).reshape(self.shape)

    def labels(self) -> tuple[list[str], np.ndarray] | None:
        """(class names, int64 (count,) class indices) when the source had classes, else None."""
        if not self.info.get("labels"):
            return None
        return list(self.info["labels"]["names"]), np.load(
            self.folder / self.info["labels"]["file"]
        )

    def describe(self) -> str:
        """Names the content, not the folder, so that the run's data fingerprint (which hashes this)
        survives a move of the prepared set and changes whenever its examples do."""
        return (
            f"prepared data set of {len(self)} examples at "
            f"{self.image_size}x{self.image_size}x{self.nc} "
            f"(fingerprint {self.info['fingerprint'][:16]}), "
            f"from {self.info['source']['description']}"
        )


# Preparation.


def shard_name(shard: int, num_shards: int) -> str:
    return f"data-{shard:05d}-of-{num_shards:05d}{SUFFIX}"


def _source(
    data: str, image_size: int, nc: int, split: str
) -> tuple[Source, dict[str, Any], list[str] | None, np.ndarray | None, Callable[[int], str]]:
    """(source, its JSON entry, class names, source labels, index -> name) for what `data` names."""
    from jaxgan.data import sources
    from jaxgan.data.fingerprint import fingerprint

    if data == "photos":
        raise PreparedDataError(
            "the built-in 'photos' draw a new random crop of each photograph at every step; "
            "there is nothing fixed to prepare (prepare a folder of images instead)"
        )
    if data in BUILT_IN:
        source = (
            sources.Digits(image_size, nc, split)
            if data == "digits"
            else sources.Fake(image_size, nc)
        )
        entry = {
            "data": data,
            "kind": "built-in",
            "description": source.describe(),
            "fingerprint": fingerprint(source),
        }
        if data == "digits":
            entry["split"] = split
            labels = sources.digits_labels()[source.indices.start : source.indices.stop].astype(
                np.int64
            )
            return source, entry, [str(d) for d in range(10)], labels, lambda i: f"digit {i}"
        return source, entry, None, None, lambda i: f"example {i}"
    if is_prepared(data):
        raise PreparedDataError(
            f"{data} is a prepared data set already; give the folder of images it came from"
        )
    folder = sources.Folder(str(Path(data).resolve()), image_size, nc)
    relative = [path.relative_to(folder.folder) for path in folder.files]
    entry = {
        "data": str(folder.folder),
        "kind": "folder",
        "description": folder.describe(),
        "fingerprint": fingerprint(folder),
    }
    names, labels = None, None
    if all(
        len(path.parts) > 1 for path in relative
    ):  # every image in a subfolder: the subfolders are classes
        names = sorted({path.parts[0] for path in relative})
        labels = np.array([names.index(path.parts[0]) for path in relative], np.int64)
    return folder, entry, names, labels, lambda i: str(folder.files[i])


def default_num_shards(count: int, image_size: int, nc: int) -> int:
    return max(1, math.ceil(count * image_size * image_size * nc / SHARD_BYTES))


def staging_folder(out: Path) -> Path:
    """Where a preparation of `out` works until it is complete: hidden, beside it."""
    return out.parent / f".{out.name}.partial"


def _write_json(path: Path, value: Any) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(value, indent=1) + "\n")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_shard(
    source: Source,
    indices: range,
    path: Path,
    digests: Path,
    threads: int,
    describe: Callable[[int], str],
    advance: Callable[[int], None],
) -> list[dict[str, Any]]:
    """Load `indices` of `source` with `threads` threads, in order, into one ArrayRecord file
    (atomically), and each record's SHA-256 into `digests`; returns the examples skipped as
    unreadable ({"index", "file", "error"})."""
    from array_record.python.array_record_module import ArrayRecordWriter

    skipped, pending = [], iter(indices)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads)
    try:
        with atomic_path(path) as temporary, atomic_path(digests) as digest_file:
            writer, hashes = ArrayRecordWriter(str(temporary), WRITER_OPTIONS), []
            window = collections.deque(
                (i, pool.submit(source.load, i, i)) for i in itertools.islice(pending, 4 * threads)
            )
            try:
                while window:  # a bounded window of decodes runs ahead of the writer
                    index, future = window.popleft()
                    following = next(pending, None)
                    if following is not None:
                        window.append((following, pool.submit(source.load, following, following)))
                    try:
                        example = future.result()
                    except Exception as error:  # an unreadable file is skipped, named, counted
                        skipped.append(
                            {"index": index, "file": describe(index), "error": str(error)}
                        )
                        warnings.warn(
                            f"skipping unreadable {describe(index)} ({error})", stacklevel=2
                        )
                    else:
                        record = np.ascontiguousarray(example, np.uint8).tobytes()
                        writer.write(record)
                        hashes.append(hashlib.sha256(record).digest())
                    advance(1)
                if not writer.ok():
                    raise OSError(f"{path}: writing the ArrayRecord shard failed")
            finally:
                writer.close()
            digest_file.write_bytes(b"".join(hashes))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return skipped


def prepare(
    data: str,
    out: str | os.PathLike,
    image_size: int,
    nc: int = 3,
    num_shards: int | None = None,
    split: str = "train",
    force: bool = False,
    threads: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Prepare `data` (a folder of images, recursively, or built-in 'digits' / 'fake') into the
    folder `out`.

    Returns the prepared set's JSON. Unreadable files are skipped with a warning naming each, and
    counted. A rerun of an interrupted preparation with the same arguments keeps its finished
    shards; with other arguments (or a changed source) it starts again. An existing `out` is
    replaced only with `force`, and only once the new set is complete; an identical finished set is
    left as it is.
    """
    out = Path(out).resolve()
    source, entry, names, source_labels, describe = _source(data, image_size, nc, split)
    count = len(source)
    num_shards = min(count, num_shards or default_num_shards(count, image_size, nc))
    if num_shards < 1:
        raise PreparedDataError(f"--num-shards must be at least 1, got {num_shards}")
    job = {
        "format_version": FORMAT_VERSION,
        "source": entry["data"],
        "split": entry.get("split"),
        "image_size": image_size,
        "nc": nc,
        "num_shards": num_shards,
        "source_hash": entry["fingerprint"]["hash"],
    }
    staging = staging_folder(out)
    finished = _read_json(out / INFO) if out.is_dir() else None
    if isinstance(finished, dict) and finished.get("job") == job:
        shutil.rmtree(staging, ignore_errors=True)
        log(
            f"{out} is already prepared from {entry['description']} with these arguments: "
            "nothing to do"
        )
        return finished
    if (out.exists() and not (out.is_dir() and not any(out.iterdir()))) and not force:
        what = (
            "holds a set prepared with other arguments or from other files"
            if isinstance(finished, dict)
            else "exists"
        )
        raise FileExistsError(
            f"{out} {what}; pass --force (force=True) to replace it once the new set is complete, "
            "or choose another output folder"
        )

    recorded = _read_json(staging / "job.json")
    if recorded is not None and recorded != job:
        log(
            f"restarting the preparation in {staging}: it was started with other arguments or "
            "another version of the source"
        )
    if staging.exists() and recorded != job:
        if recorded is None and any(p.name != "job.json" for p in staging.iterdir()):
            raise PreparedDataError(
                f"{staging} exists but is not a jaxgan preparation (no job.json); remove it"
            )
        shutil.rmtree(staging)
    _write_json(
        staging / "job.json", job
    )  # first: a folder of that name without it is not ours to delete
    data_dir, progress_dir = staging / "data", staging / "progress"
    data_dir.mkdir(exist_ok=True)
    progress_dir.mkdir(exist_ok=True)

    bounds = [count * k // num_shards for k in range(num_shards + 1)]
    done = {k: _read_json(progress_dir / f"{k:05d}.json") for k in range(num_shards)}
    done = {
        k: v
        for k, v in done.items()
        if isinstance(v, dict)
        and (data_dir / shard_name(k, num_shards)).is_file()
        and (progress_dir / f"{k:05d}.digests").is_file()
    }
    if done:
        log(f"resuming: keeping {len(done)} of {num_shards} shard(s) already written in {staging}")
    remaining = sum(bounds[k + 1] - bounds[k] for k in range(num_shards) if k not in done)
    from tqdm import tqdm

    with tqdm(
        total=remaining, unit="img", desc=f"preparing {out.name}", disable=not progress
    ) as bar:
        for k in range(num_shards):
            if k in done:
                continue
            skipped = _write_shard(
                source,
                range(bounds[k], bounds[k + 1]),
                data_dir / shard_name(k, num_shards),
                progress_dir / f"{k:05d}.digests",
                threads or os.cpu_count() or 1,
                describe,
                bar.update,
            )
            done[k] = {"skipped": skipped}
            _write_json(progress_dir / f"{k:05d}.json", done[k])

    skipped = [item for k in range(num_shards) for item in done[k]["skipped"]]
    kept = np.setdiff1d(np.arange(count), [item["index"] for item in skipped])
    if not len(kept):
        raise PreparedDataError(
            f"no example of {entry['description']} could be read ({len(skipped)} unreadable)"
        )
    fingerprint = hashlib.sha256(f"{FORMAT} {image_size} {nc}\n".encode())
    shards = []
    for k in range(num_shards):
        digests = (progress_dir / f"{k:05d}.digests").read_bytes()
        fingerprint.update(digests)
        path = data_dir / shard_name(k, num_shards)
        shards.append(
            {"file": path.name, "count": len(digests) // 32, "bytes": path.stat().st_size}
        )
    labels = None
    if names is not None:
        with atomic_path(data_dir / LABELS) as temporary:
            with open(temporary, "wb") as handle:
                np.save(handle, source_labels[kept])
        fingerprint.update(json.dumps(names).encode() + source_labels[kept].astype("<i8").tobytes())
        labels = {
            "names": names,
            "file": LABELS,
            "counts": np.bincount(source_labels[kept], minlength=len(names)).tolist(),
        }
    for leftover in data_dir.iterdir():  # temporaries of writes a kill cut short
        if leftover.name not in {shard["file"] for shard in shards} | {LABELS}:
            leftover.unlink()
    import jaxgan

    info = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "image_size": image_size,
        "nc": nc,
        "dtype": "uint8",
        "count": int(len(kept)),
        "shards": shards,
        "labels": labels,
        "fingerprint": fingerprint.hexdigest(),
        "source": entry,
        "skipped": [{"file": item["file"], "error": item["error"]} for item in skipped],
        "order": (
            "the source's order (a folder's sorted file order) without the unreadable examples"
        ),
        "job": job,
        "created_by": f"jaxgan {jaxgan.__version__}",
    }
    _write_json(
        data_dir / INFO, info
    )  # last: only now does the set look complete (and it is still hidden)
    if out.exists() or out.is_symlink():
        from jaxgan.atomic import _replace

        _replace(
            data_dir, out, directory=True
        )  # the old set is removed only once the new one is in place
    else:
        os.replace(data_dir, out)
    shutil.rmtree(staging, ignore_errors=True)
    log(
        f"prepared {len(kept):,} examples of {entry['description']} into {out} "
        f"({num_shards} shard(s), {image_size}x{image_size}x{nc}); "
        f"{len(skipped)} unreadable skipped"
        + (
            f": {', '.join(item['file'] for item in skipped[:5])}"
            f"{' ...' if len(skipped) > 5 else ''}"
            if skipped
            else ""
        )
    )
    return info
