"""The validation report's findings: each figure the report shows, judged against the
policy's thresholds (pure: figures and bands in, rows ``{severity, section, finding}`` out).

Severity follows the policy's bands: a figure in the ``alert`` band is a **high** finding,
in the ``warn`` band a **medium** one; what the policy does not rate, or a caveat an
examiner must read with the figures, is **low**. Validation on the training sample alone
is high: nothing shows how the model does on data it has not seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..domain.monitoring_policy import Band
from .helpers import p_text

SEVERITY = {"high": 0, "medium": 1, "low": 2}
BY_STATUS = {"alert": "high", "warn": "medium"}
SMALL_SAMPLE = 500
ALPHA = 0.05


def finding(severity: str, section: str, text: str) -> dict[str, str]:
    return {"severity": severity, "section": section, "finding": text}


def ordered(rows: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """High first, then medium, then low; in report order within each."""
    return sorted((dict(r) for r in rows), key=lambda r: SEVERITY[r["severity"]])


def card_findings(missing: Sequence[str]) -> list[dict[str, str]]:
    return [finding("medium", "1. Purpose", f"The model card lacks {', '.join(missing)}: the "
                    "intended use and limitations must be documented (SR 11-7).")] \
        if missing else []


def data_findings(kind: str, quality: Sequence[Mapping[str, Any]],
                  features: Sequence[str]) -> list[dict[str, str]]:
    out = []
    if kind == "reference":
        out.append(finding("high", "3. Data", "No training table is recorded: the report "
                           "validates on the reference sample registered with the version, "
                           "the data the model was fitted on (in-sample)."))
    out += [finding("medium", "3. Data", f"{q['column']} is {q['missing_rate']:.1%} missing.")
            for q in quality if q["column"] in features and q["missing_rate"] > 0.05]
    return out


def performance_findings(samples: Sequence[Mapping[str, Any]],
                         bands: Mapping[str, Band]) -> list[dict[str, str]]:
    """``samples``: rows ``{sample, role, n, auc, auc_low, auc_high, ks, ...}``."""
    out = []
    outside: list[Mapping[str, Any]] = [s for s in samples if s["role"] != "in-sample"]
    if not outside:
        names = ", ".join(str(s["sample"]) for s in samples)
        out.append(finding("high", "4. Performance", f"In-sample only: every figure is "
                           f"measured on the data the model was trained on ({names}); no "
                           "hold-out or out-of-time sample exists, so performance on unseen "
                           "data is unknown."))
    band = bands.get("roc_auc")
    if band is None:
        out.append(finding("low", "4. Performance", "The policy sets no roc_auc threshold: "
                           "discrimination is reported but not rated against a limit."))
        outside = []
    for s in outside:
        assert band is not None
        status = band.status(s["auc"])
        if status in BY_STATUS:
            out.append(finding(BY_STATUS[status], "4. Performance",
                               f"AUC on the {s['role']} sample {s['sample']} is "
                               f"{s['auc']:.3f} ({_ci(s, 'auc')}), in the policy's {status} "
                               f"band (warn {band.warn:g}, alert {band.alert:g})."))
    out += [finding("medium", "4. Performance", f"The {s['sample']} sample has only {s['n']} "
                    "rows: its intervals are wide.") for s in samples if s["n"] < SMALL_SAMPLE]
    return out


def stability_findings(rows: Sequence[Mapping[str, Any]], band: Band) -> list[dict[str, str]]:
    """PSI between samples, rated by the policy's PSI band."""
    out = []
    for r in rows:
        status = band.status(r["psi"])
        if status in BY_STATUS:
            out.append(finding(BY_STATUS[status], "5. Stability",
                               f"PSI of {r['feature']} ({r['compared']}) is {r['psi']:.3f}: "
                               f"the samples differ ({status} band)."))
    return out


def production_findings(drift: Sequence[Mapping[str, Any]], production: Mapping[str, Any] | None,
                        alerts: Sequence[Any], bands: Mapping[str, Band],
                        maturity_days: float) -> list[dict[str, str]]:
    """Drift of production traffic (each feature's worst window, rated), realized
    performance on matured outcomes, and the alerts monitoring recorded."""
    out = []
    for r in drift:
        if r["rating"] in BY_STATUS:
            out.append(finding(BY_STATUS[r["rating"]], "5. Stability",
                               f"Production drift: {r['feature']} PSI {r['psi']:.3f} in "
                               f"{r['window']} (drifted: adjusted p {p_text(r['p_adjusted'])})."))
    if production is None:
        out.append(finding("low", "4. Performance", "No production outcome has matured yet "
                           f"(maturity {maturity_days:g} days): realized performance is not "
                           "observed."))
    elif (band := bands.get("roc_auc")) is not None and \
            (status := band.status(production["auc"])) in BY_STATUS:
        out.append(finding(BY_STATUS[status], "4. Performance",
                           f"Realized AUC on matured production traffic is "
                           f"{production['auc']:.3f} ({_ci(production, 'auc')}), in the "
                           f"policy's {status} band."))
    if alerts:
        listed = "; ".join(f"{a.payload['metric']} {a.payload.get('feature') or ''} = "
                           f"{a.payload['value']:.3g}" for a in alerts[:5])
        out.append(finding("high", "8. Monitoring", f"Monitoring recorded {len(alerts)} "
                           f"alert(s) for this version: {listed}."))
    return out


def benchmark_findings(result: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """``result``: ``{name, sample, diff, p_value, low, high, in_sample}`` where ``diff`` is
    the model's AUC minus the benchmark's."""
    if result is None:
        return [finding("medium", "6. Benchmark", "No benchmark or challenger could be "
                        "compared with the model.")]
    where = f"on {result['sample']}" + (" (in-sample)" if result.get("in_sample") else "")
    gap = (f"AUC difference {result['diff']:+.4f} (95% CI {result['low']:+.4f} to "
           f"{result['high']:+.4f}, DeLong p {p_text(result['p_value'])})")
    if result["diff"] < 0 and result["p_value"] < ALPHA:
        return [finding("high", "6. Benchmark", f"{result['name']} outperforms the model "
                        f"{where}: {gap}.")]
    if result["p_value"] >= ALPHA:
        return [finding("low", "6. Benchmark", f"The model does not differ significantly "
                        f"from {result['name']} {where}: {gap}; is its complexity "
                        "warranted?")]
    return []


def status_findings(status: Mapping[str, Any]) -> list[dict[str, str]]:
    return [finding("medium", "7. Limitations", f"{k.replace('_', ' ')}: {v}")
            for k, v in status.items() if k in ("revalidation_required", "retrain_requested")]


def _ci(row: Mapping[str, Any], name: str) -> str:
    low, high = row.get(f"{name}_low"), row.get(f"{name}_high")
    return "no interval" if low is None else f"95% CI {low:.3f}–{high:.3f}"
