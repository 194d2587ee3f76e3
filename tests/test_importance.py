"""feature_importance(): the model's own importances, else permutation importance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from nbregistry import InvalidInputError
from nbregistry.monitoring.importance import feature_importance, rank_drift


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"strong": rng.normal(size=600), "weak": rng.normal(size=600),
                          "noise": rng.normal(size=600)})
    y = (frame.strong * 2 + frame.weak * 0.5 + rng.normal(0, 0.5, 600) > 0).astype(int)
    return frame, y.to_numpy()


def test_tree_importances(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    result = feature_importance(model, pa.Table.from_pandas(X))
    assert result.method == "feature_importances"
    expected = model.feature_importances_ / model.feature_importances_.sum()
    assert [result.values[c] for c in X.columns] == pytest.approx(expected, rel=1e-12)
    assert result.ranked()[0] == "strong" and sum(result.values.values()) == pytest.approx(1)


def test_pipeline_coefficients_from_the_last_step(data: tuple[pd.DataFrame, np.ndarray]
                                                  ) -> None:
    X, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    result = feature_importance(model, pa.Table.from_pandas(X))
    coef = np.abs(model[-1].coef_[0])
    assert result.method == "coef"
    assert [result.values[c] for c in X.columns] == pytest.approx(coef / coef.sum(), rel=1e-12)
    assert result.ranked() == ["strong", "weak", "noise"]


def test_permutation_when_the_model_has_none(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    model = KNeighborsClassifier().fit(X, y)
    result = feature_importance(model, pa.Table.from_pandas(X), y, n_repeats=3, seed=1)
    assert result.method == "permutation"
    raw = np.clip(permutation_importance(model, X, y, n_repeats=3,
                                         random_state=1).importances_mean, 0, None)
    assert [result.values[c] for c in X.columns] == pytest.approx(raw / raw.sum(), rel=1e-9)
    with pytest.raises(InvalidInputError, match="pass y"):
        feature_importance(model, pa.Table.from_pandas(X))


def test_encoded_pipeline_falls_back_to_permutation(data: tuple[pd.DataFrame, np.ndarray]
                                                    ) -> None:
    X, y = data
    X = X.assign(band=np.where(X.strong > 0, "hi", "lo"))
    encode = ColumnTransformer([("cat", OneHotEncoder(), ["band"])], remainder="passthrough")
    model = make_pipeline(encode, LogisticRegression()).fit(X, y)
    result = feature_importance(model, pa.Table.from_pandas(X), y, n_repeats=2)
    assert result.method == "permutation"
    assert set(result.values) == {"strong", "weak", "noise", "band"}


def test_rank_drift_puts_drifted_important_features_first() -> None:
    drift = pa.table({"feature": ["a", "b", "c", "score"],
                      "drifted": [True, False, True, True]})
    from nbregistry.monitoring.importance import Importance
    ranked = rank_drift(drift, Importance("coef", {"a": 0.1, "b": 0.6, "c": 0.3}))
    assert ranked.column("feature").to_pylist() == ["c", "a", "score", "b"]
    assert ranked.column("importance").to_pylist() == [0.3, 0.1, None, 0.6]
