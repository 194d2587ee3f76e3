"""Who is acting: explicit user, else $NBREGISTRY_USER, else $JUPYTERHUB_USER, else the OS user."""

from __future__ import annotations

import getpass
import os

from ..domain.errors import InvalidInputError


def resolve_user(user: str | None = None) -> str:
    candidate = user or os.environ.get("NBREGISTRY_USER") or os.environ.get("JUPYTERHUB_USER")
    if not candidate:
        try:
            candidate = getpass.getuser()
        except Exception:  # no passwd entry (containers)
            candidate = f"uid-{os.getuid()}"
    if not isinstance(candidate, str) or not candidate.strip() or len(candidate) > 200 or any(
            ord(c) < 32 for c in candidate):
        raise InvalidInputError(f"user {candidate!r} is not a valid identity: use a non-empty "
                                "name without control characters, at most 200 characters",
                                field="user", value=candidate)
    return candidate.strip()
