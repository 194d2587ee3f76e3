"""Opening a registry: where it is, who acts, and what happens when it isn't there."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..domain.errors import InvalidInputError
from ..store import Location
from . import signing
from . import witness as witnesses
from .identity import resolve_user
from .registry import Registry

DEFAULT_URI = ".nbregistry"


def open_registry(uri: str | os.PathLike[str] | None = None, user: str | None = None, *,
                  storage_options: Mapping[str, str] | None = None,
                  max_staleness: float = 0.0, create: bool | None = None,
                  private: bool = False,
                  signing_key: Any = None, witness: str | os.PathLike[str] | None = None,
                  witness_storage_options: Mapping[str, str] | None = None) -> Registry:
    """Open the registry at ``uri`` (a folder, or ``s3://…``, ``gs://…``, ``az://…``).

    Parameters
    ----------
    uri : str or path, optional
        Defaults to ``$NBREGISTRY_URI``, else ``./.nbregistry``.
    user : str, optional
        Who acts: else ``$NBREGISTRY_USER``, ``$JUPYTERHUB_USER``, the OS user.
    storage_options : dict, optional
        Object-store settings, as deltalake takes them (``AWS_ENDPOINT_URL``, ...).
    max_staleness : float
        Reads skip the check for newer events when the last one is younger than this many
        seconds (0: always check; one ``stat`` or ``HEAD``).
    create : bool, optional
        ``None`` creates a missing registry and says so with a ``RegistryCreatedWarning``
        (the caller becomes its admin); ``True`` creates it quietly; ``False`` raises
        ``NotFoundError`` instead (a mistyped path never makes a new registry).
    signing_key : Ed25519 private key, optional
        Signs every event you write; required once an admin enrolled your public key.
    private : bool
        A local registry created now gets a folder only its owner can enter (mode 0700):
        reference data (with its target) and models are stored in it.
    witness : str or path, optional
        Where heads of the log are published (default ``$NBREGISTRY_WITNESS``): a folder or
        bucket the registry's writers cannot rewrite (S3 Object Lock), checked by
        ``verify``. ``witness_storage_options`` reach it.
    """
    location = Location.parse(_default_uri(uri), storage_options)
    if not isinstance(max_staleness, int | float) or not max_staleness >= 0:
        raise InvalidInputError(f"max_staleness must be a number of seconds >= 0, got "
                                f"{max_staleness!r}", field="max_staleness")
    witness = witness if witness is not None else os.environ.get("NBREGISTRY_WITNESS") or None
    if private and location.is_local and not Path(location.uri).exists():
        Path(location.uri).mkdir(parents=True, mode=0o700)
    return Registry(location, resolve_user(user), max_staleness=float(max_staleness),
                    create=create,
                    signing_key=None if signing_key is None else signing.private_key(signing_key),
                    witness=None if witness is None else witnesses.location(
                        witness, witness_storage_options))


def _default_uri(uri: str | os.PathLike[str] | None) -> str | os.PathLike[str]:
    if uri is not None:
        return uri
    env = os.environ.get("NBREGISTRY_URI")
    if env is not None and not env.strip():
        raise InvalidInputError("NBREGISTRY_URI is set but empty: unset it to use "
                                "./.nbregistry, or set it to the registry's folder or URI",
                                field="uri")
    return env or DEFAULT_URI
