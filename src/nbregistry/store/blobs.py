"""Content-addressed artifact blobs: ``_registry/artifacts/sha256/<aa>/<rest-of-hash>``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..domain.errors import IntegrityError, NotFoundError
from .location import Location

PREFIX = "_registry/artifacts/sha256"


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks (data files and report outputs can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def key_for(sha256: str) -> str:
    return f"{PREFIX}/{sha256[:2]}/{sha256[2:]}"


class BlobStore:
    def __init__(self, location: Location) -> None:
        self.location = location

    def put(self, data: bytes) -> str:
        """Store bytes under their sha256 (idempotent, atomic) and return the hash."""
        digest = hashlib.sha256(data).hexdigest()
        self.location.put_if_absent(key_for(digest), data)
        return digest

    def exists(self, sha256: str) -> bool:
        return self.location.exists(key_for(sha256))

    def get(self, sha256: str) -> bytes:
        """Read and verify; a blob whose content no longer hashes to its name is refused."""
        try:
            data = self.location.read_bytes(key_for(sha256))
        except FileNotFoundError as exc:
            raise NotFoundError(f"artifact {sha256[:12]}… is missing from "
                                f"{self.location.join(PREFIX)}; restore it from backup",
                                ref=sha256) from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise IntegrityError(
                f"artifact {sha256[:12]}… was modified (its content hashes to {actual[:12]}…); "
                "refusing to load it. Restore the original file or re-register the model.",
                problems=[f"artifact {sha256} content hash {actual}"])
        return data

    def delete(self, sha256: str) -> None:
        """Remove a blob (derived data only: a superseded state snapshot)."""
        self.location.delete(key_for(sha256))

    def all(self) -> dict[str, int]:
        """Every stored blob's hash and size."""
        out = {}
        for path, size, _ in self.location.list(PREFIX):
            parts = path.split("/")
            out[parts[-2] + parts[-1]] = size
        return out
