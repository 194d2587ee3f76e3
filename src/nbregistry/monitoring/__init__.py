"""Monitoring: capture of predictions and outcomes, and the statistics behind drift,
performance and fairness over prediction logs.

Capture (``capture``, ``buffer``, ``convert``) needs only the core install: pyarrow and
deltalake. The statistics need the ``monitoring`` extra (DuckDB, numpy, scipy).

The computation modules take a DuckDB connection (``duck.connect()``) and a SQL FROM-clause
expression naming the rows (``read_parquet([...])`` over one Delta snapshot's files, or a
registered Arrow table), aggregate in DuckDB and return Arrow tables:

- ``baseline.build_baseline``: the frozen, JSON-serializable reference profile of a version;
- ``drift.drift`` / ``drift.dataset_drift``: per-feature drift against a baseline;
- ``performance.performance`` / ``performance.calibration``: metrics over joined outcomes;
- ``fairness.fairness``: selection rates, adverse impact ratio, significance per group;
- ``concept``: DDM, Page-Hinkley and ADWIN over an error stream, and naming concept drift;
- ``significance``: paired bootstrap and DeLong's test for comparing two models;
- ``importance.feature_importance``: the model's own importances, else permutation importance.

Nothing heavy is imported here: import the submodule you need.
"""
