# %% [markdown]
# # SOX change evidence
#
# Every change to the controlled stage of the model in the period, tested from the
# registry's hash-chained audit log: who requested it, who approved it, whether the
# approvers were independent of the requester and of the registrant (segregation of duties),
# whether the approval came before the deployment, whether the artifact deployed is the one
# approved (sha256), the gate evidence, emergency promotions and their ratification, the role
# grants and revocations, and the result of the audit-trail verification.
#
# The evidence is re-derived from the raw events by an independent replay
# (`nbregistry.reports.sox`), not from the registry's own state.

# %% tags=["parameters"]
from typing import Optional

registry_uri: str = None  # set by the runner
pin: Optional[dict] = None  # set by nbr.reverify: the head and table versions to re-run on
model: str = None  # the model the report is filed for
version: int = None  # its version
start: Optional[str] = None  # start of the period (ISO date or time, UTC; default: the beginning)
end: Optional[str] = None  # end of the period, exclusive (default: the head this report reads)
stage: str = "production"  # the controlled stage
all_models: bool = False  # every model's changes, not only this model's

# %%
from nbregistry.domain.timefmt import parse_time
from nbregistry.reports import helpers as h
from nbregistry.reports import sox

ctx = h.open_report(registry_uri, pin, title=f"SOX change evidence: {model} v{version}")
reg = ctx.registry
mv = reg.get(model, version)
events = ctx.events()
period_start = parse_time(start, field="start") if start else None
period_end = parse_time(end, field="end") if end else None
as_of = period_end or events[-1].ts
result = sox.analyse(events, start=period_start, end=period_end, stage=stage,
                     model=None if all_models else model, now=as_of)
h.show(h.table([{"scope": "all models" if all_models else model, "stage": stage,
                 "from": period_start or "the first event", "to (exclusive)": as_of,
                 "events examined": len(events)}], caption="Scope"))

# %% [markdown]
# ## Population of production changes
#
# Promotions (ordinary and emergency) and rollbacks (by a person or by the monitoring
# policy) of the controlled stage, with requester, approvers, the segregation-of-duties
# check and the gate evidence the promotion was decided on.

# %%
h.show(h.table(result.changes, columns=[
    "seq", "ts", "change", "model", "version", "replaces", "requested_by", "registered_by",
    "approvers", "approved_at", "sod_ok", "gates", "emergency", "ratified_by", "ratified_at",
    "exceptions"], caption=f"{len(result.changes)} change(s) of {stage}"))

# %% [markdown]
# ## Deployments
#
# Each recorded deployment (`record_deployment`, `nbregistry deploy`): was the version
# approved for the stage before it was deployed, and is the deployed sha256 the approved
# artifact's?

# %%
h.show(h.table(result.deployments, columns=[
    "seq", "ts", "deployed_by", "model", "version", "target", "approved_before",
    "approval_seq", "hash_matches", "deployed_sha256", "approved_sha256"],
    caption=f"{len(result.deployments)} deployment(s)"))

# %% [markdown]
# ## Exceptions

# %%
if result.exceptions:
    h.show(h.note(f"{len(result.exceptions)} exception(s) found: each needs a documented "
                  "explanation or remediation.", kind="bad"))
else:
    h.show(h.note("No exception: every change passed every control tested.", kind="good"))
h.show(h.table(result.exceptions, columns=["seq", "ts", "model", "version", "check",
                                            "finding"], caption="Exceptions"))

# %% [markdown]
# ## Role grants and revocations

# %%
h.show(h.table(result.roles, columns=["seq", "ts", "by", "change", "user", "role", "note"],
               caption="Role changes in the period"))
h.show(h.table([{"user": u, "roles": ", ".join(r)} for u, r in reg.roles().items()],
               caption="Roles held at the head"))

# %% [markdown]
# ## Audit-trail verification
#
# The whole log re-read from storage: hash chain, gap-free sequence, signatures, artifact
# hashes, and that the head this report read is still in the log.

# %%
verified = ctx.live.verify(expected_head=ctx.head)
h.show(h.table([{"check": c.name, "passed": c.ok, "what it proves": c.proves}
                for c in verified.checks], caption="Checks"))
h.show(h.table([{"kind": p.kind, "problem": p.message} for p in verified.problems],
               caption="Problems"))

# %% [markdown]
# ## Key figures

# %%
h.record_figures({**result.figures(), "verify_ok": verified.ok})

# %%
h.close(ctx)
