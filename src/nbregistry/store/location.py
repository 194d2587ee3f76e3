"""Where a registry lives: a local folder or an object-store prefix, plus how to reach it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..domain.errors import InvalidInputError, StorageError
from . import forkguard

REMOTE_SCHEMES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "azure"}


def _obstore_config(storage_options: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """deltalake takes AWS_ENDPOINT_URL-style keys; obstore wants lower-case ``aws_endpoint``."""
    config: dict[str, str] = {}
    client: dict[str, Any] = {}
    for key, value in storage_options.items():
        low = key.lower()
        if low in {"aws_allow_http", "allow_http"}:
            client["allow_http"] = str(value).lower() == "true"
        elif low == "aws_endpoint_url":
            config["aws_endpoint"] = value
        elif low.startswith(("aws_", "google_", "azure_")):
            config[low] = value
    return config, client


@dataclass
class Location:
    """The registry root. Paths inside it are '/'-joined relative keys."""

    uri: str
    storage_options: dict[str, str] = field(default_factory=dict)
    _store: Any = field(default=None, repr=False)

    @classmethod
    def parse(cls, uri: str | os.PathLike[str], storage_options: Mapping[str, str] | None
              ) -> Location:
        text = os.fspath(uri)
        if not text or not text.strip():
            raise InvalidInputError("registry URI is empty: pass a folder path or 's3://…'")
        scheme = urlparse(text).scheme.lower()
        if scheme in REMOTE_SCHEMES:
            return cls(text.rstrip("/"), dict(storage_options or {}))
        if scheme == "file":
            text = urlparse(text).path
        elif scheme and len(scheme) > 1:
            raise InvalidInputError(
                f"unsupported registry URI scheme {scheme!r}: use a local path or one of "
                f"{', '.join(sorted(REMOTE_SCHEMES))}")
        return cls(str(Path(text).expanduser().resolve()), dict(storage_options or {}))

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri

    def join(self, *parts: str) -> str:
        return "/".join([self.uri, *parts])

    @property
    def store(self) -> Any:
        if self._store is None:
            forkguard.check()
            from obstore.store import from_url

            if self.is_local:
                Path(self.uri).mkdir(parents=True, exist_ok=True)
                self._store = from_url(Path(self.uri).as_uri())
            else:
                config, client = _obstore_config(self.storage_options)
                options: dict[str, Any] = {"config": config, "client_options": client}
                self._store = from_url(self.uri, **options)
        return self._store

    def exists(self, key: str) -> bool:
        if self.is_local:
            return os.path.exists(os.path.join(self.uri, key))
        import obstore

        try:
            forkguard.guarded(lambda: obstore.head(self.store, key))
        except FileNotFoundError:
            return False
        return True

    def read_bytes(self, key: str) -> bytes:
        import obstore

        try:
            return bytes(forkguard.guarded(lambda: obstore.get(self.store, key).bytes()))
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageError(f"cannot read {self.join(key)}: {exc}") from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write atomically; False when the key already exists (content-addressed callers)."""
        import obstore
        from obstore.exceptions import AlreadyExistsError

        try:
            forkguard.guarded(lambda: obstore.put(self.store, key, data, mode="create"))
        except AlreadyExistsError:
            return False
        return True

    def put(self, key: str, data: bytes) -> None:
        import obstore

        forkguard.guarded(lambda: obstore.put(self.store, key, data))

    def delete(self, key: str) -> None:
        import obstore

        with contextlib.suppress(FileNotFoundError):
            forkguard.guarded(lambda: obstore.delete(self.store, key))

    def list(self, prefix: str) -> list[tuple[str, int]]:
        import obstore

        def run() -> list[tuple[str, int]]:
            return [(m["path"], int(m["size"])) for batch in obstore.list(self.store, prefix)
                    for m in batch]

        return forkguard.guarded(run)

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Serialize writers on one machine so they don't waste work losing commit races.

        Correctness never depends on it: the Delta commit is put-if-absent everywhere. Object
        stores get no lock; their writers retry with jittered backoff instead.
        """
        if not self.is_local:
            yield
            return
        path = Path(self.uri, "_registry", ".writer.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
