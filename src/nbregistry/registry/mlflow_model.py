"""An MLflow model directory as one registry artifact, and the flavor that loads it with
MLflow's own loader.

The directory (``MLmodel`` plus the files its flavors name) is packed into a zip whose bytes
depend only on the files' names and contents (sorted, stored uncompressed, fixed times and
modes), so the same model always has the same sha256. Loading unpacks it into a temporary
folder and calls the native MLflow flavor's ``load_model`` (``mlflow.sklearn`` for a
scikit-learn model, so ``predict_proba`` is there) or, for a flavor MLflow does not ship,
``mlflow.pyfunc.load_model``. Both may unpickle and import code shipped in the directory, so
the flavor is not ``safe``: it loads only for ``trusted=True`` or a trusted registrant, like
``joblib``.
"""

from __future__ import annotations

import atexit
import importlib
import io
import shutil
import tempfile
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..domain.errors import IntegrityError, InvalidInputError
from ..domain.extras import require

EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


@dataclass(frozen=True, slots=True)
class MlflowModel:
    """A packed MLflow model directory and the lineage of the run that trained it (which
    ``register`` records instead of describing the importing process)."""

    data: bytes
    nbregistry_lineage: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_directory(cls, path: str | Path, lineage: dict[str, Any] | None = None
                       ) -> MlflowModel:
        return cls(pack(Path(path)), dict(lineage or {}))


def pack(directory: Path) -> bytes:
    """The directory as a deterministic zip; a folder without ``MLmodel`` is refused."""
    if not (directory / "MLmodel").is_file():
        raise InvalidInputError(f"{directory} is not an MLflow model directory (it has no "
                                "MLmodel file)", field="model")
    files = sorted((p.relative_to(directory).as_posix(), p) for p in directory.rglob("*")
                   if p.is_file())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, path in files:
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def unpack(data: bytes, target: Path) -> None:
    """Extract into ``target``; an entry that would land outside it is refused."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            parts = PurePosixPath(name).parts
            if name.startswith("/") or "\\" in name or ".." in parts or not parts:
                raise IntegrityError(f"the MLflow model artifact holds an unsafe path {name!r}",
                                     problems=[name])
        archive.extractall(target)


def load_directory(path: Path) -> Any:
    """The model through MLflow: the native flavor's loader if MLflow ships it, else pyfunc."""
    require("mlflow", "mlflow")
    from mlflow.models import Model

    for flavor in Model.load(str(path / "MLmodel")).flavors:
        if flavor == "python_function" or not flavor.isidentifier():
            continue
        try:
            module = importlib.import_module(f"mlflow.{flavor}")
        except ImportError:
            continue
        if hasattr(module, "load_model"):
            return module.load_model(str(path))
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(path))


class MlflowFlavor:
    name = "mlflow"
    safe = False  # MLflow's loaders unpickle and may import code shipped with the model

    def matches(self, model: Any) -> bool:
        return isinstance(model, MlflowModel)

    def dump(self, model: Any) -> bytes:
        return bytes(model.data)

    def load(self, data: bytes) -> Any:
        # A pyfunc model may read its files after loading: the folder lives as long as
        # the model object (or the process, for objects that take no weak reference).
        folder = Path(tempfile.mkdtemp(prefix="nbregistry-mlflow-"))
        try:
            unpack(data, folder)
            model = load_directory(folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        try:
            weakref.finalize(model, shutil.rmtree, folder, ignore_errors=True)
        except TypeError:
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
        return model
