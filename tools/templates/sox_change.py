# %% [markdown]
# # SOX change evidence
#
# Every change to the controlled stage of the model in the period, tested from the
# registry's hash-chained audit log, for the IT general controls over change management that
# SOX section 404 relies on: each change authorized (requested, approved by someone
# independent of who requested or built it), tested before approval (the validation report
# the policy requires), implemented as approved (deployed by a holder of a deploying role who
# took no part in the change, with the approved artifact's sha256), emergency and automatic
# changes ratified afterwards, and access to the roles that allow all this controlled.
#
# The evidence is re-derived from the raw events by an independent replay
# (`nbregistry.reports.sox`), not from the registry's own state; the roles and the policy
# applied to each change are the ones in force when it was made.

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
# ## 1. Population of production changes
#
# *SOX ITGC, change management: authorization and segregation of duties.* Promotions
# (ordinary and emergency) and rollbacks (by a person or by the monitoring policy) of the
# controlled stage, with requester, registrant, approvers, the segregation-of-duties check
# (no approver requested or registered the change) and the gate evidence the promotion was
# decided on.

# %%
h.show(h.table(result.changes, columns=[
    "seq", "ts", "change", "model", "version", "replaces", "requested_by", "registered_by",
    "approvers", "approved_at", "approvers_independent", "gates", "emergency", "ratified_by", "ratified_at",
    "exceptions"], caption=f"{len(result.changes)} change(s) of {stage}"))

# %% [markdown]
# ## 2. Tested before approval: validation report, approval, deployment
#
# *SOX ITGC, change management: changes are tested before they are approved (SR 11-7:
# validation before use).* For each promotion, the validation report it rests on (the newest
# one recorded for the version before the approval that counts: a known template, recorded
# by a holder of a reporting role), the approval and the deployments, in the log's order.
# A promotion the policy required a report for, without one before it, is an exception.

# %%
required = sorted({t for r in result.order for t in r["required_reports"]})
h.show(h.table(result.order, columns=[
    "model", "version", "order", "validation_report_at", "approved_at", "requirement"],
    caption="Order of the evidence (event seqs, as the log has them)"))
h.show(h.note(f"The policy required {', '.join(required)} report(s) before approval." if required
              else "The policy in force required no report before approval: the order is shown "
                   "for information and is not tested.", kind="info" if required else "warn"))

# %% [markdown]
# ## 3. Deployments
#
# *SOX ITGC, change management: implemented as approved; access to production.* Each
# recorded deployment (`record_deployment`, `nbregistry deploy`): did the version hold the
# stage (approved) before it was deployed, is the deployed sha256 the approved artifact's,
# does the deployer hold a deploying role (the policy's `deployer_roles`, else any role it
# names) and did the deployer take no part in the change (registrant, requester, approvers)?

# %%
h.show(h.table(result.deployments, columns=[
    "seq", "ts", "deployed_by", "model", "version", "target", "approved_before",
    "approval_seq", "requested_by", "approvers", "deployer_ok", "hash_matches",
    "deployed_sha256", "approved_sha256"],
    caption=f"{len(result.deployments)} deployment(s)"))

# %% [markdown]
# ## 4. Automatic actions
#
# *SOX ITGC, change management: emergency changes are reviewed afterwards.* Rollbacks and
# retraining requests the monitoring policy recorded by itself are changes nobody approved:
# each needs an approver of the stage (not who ran the check) to ratify it (`reg.ratify`)
# within the policy's emergency window.

# %%
h.show(h.table(result.automatic, columns=[
    "seq", "ts", "action", "model", "version", "by", "alert_seq", "reason", "status",
    "ratified_by", "ratified_at"],
    caption=f"{len(result.automatic)} automatic action(s)"))

# %% [markdown]
# ## 5. Exceptions

# %%
if result.exceptions:
    h.show(h.note(f"{len(result.exceptions)} exception(s) found: each needs a documented "
                  "explanation or remediation.", kind="bad"))
else:
    h.show(h.note("No exception: every change passed every control tested.", kind="good"))
h.show(h.table(result.exceptions, columns=["seq", "ts", "model", "version", "check",
                                            "finding"], caption="Exceptions"))

# %% [markdown]
# ## 6. Role grants and revocations
#
# *SOX ITGC, access management: who could approve, deploy and administer, and who changed
# that.*

# %%
h.show(h.table(result.roles, columns=["seq", "ts", "by", "change", "user", "role", "note"],
               caption="Role changes in the period"))
h.show(h.table([{"user": u, "roles": ", ".join(r)} for u, r in reg.roles().items()],
               caption="Roles held at the head"))

# %% [markdown]
# ## 7. Audit-trail verification
#
# *SOX ITGC: the completeness and integrity of the evidence above.* The whole log re-read from storage: hash chain, gap-free sequence, signatures, artifact
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
