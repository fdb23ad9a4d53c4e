"""A data set's fingerprint, stored in run.json, so that a run never resumes silently on other data.

A folder's fingerprint is its file count and a hash of the files' relative names and sizes (cheap
for hundreds of thousands of files: no file is read); a built-in data set's is its description and
size.
"""

from __future__ import annotations

import hashlib

from jaxgan.data.sources import Folder, Source


def fingerprint(source: Source) -> dict[str, object]:
    """{"source", "count", "hash"} of `source`; equal fingerprints mean the same examples in the
    same order."""
    digest = hashlib.sha256()
    if isinstance(source, Folder):
        for path in source.files:
            digest.update(
                f"{path.relative_to(source.folder).as_posix()}\0{path.stat().st_size}\n".encode()
            )
    else:
        digest.update(f"{source.describe()}\0{len(source)}".encode())
    return {"source": source.describe(), "count": len(source), "hash": digest.hexdigest()}


def changes(old: dict[str, object], new: dict[str, object]) -> str | None:
    """What differs between two fingerprints, in words, or None when they match."""
    if old["hash"] == new["hash"]:
        return None
    if old["count"] != new["count"]:
        return f"{old['source']} had {old['count']:,} examples and has {new['count']:,} now"
    return (
        f"{new['source']}: the same number of files ({new['count']:,}) but other names or sizes "
        f"(fingerprint {str(old['hash'])[:12]} -> {str(new['hash'])[:12]})"
    )
