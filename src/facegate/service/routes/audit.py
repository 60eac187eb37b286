"""The audit trail, for unrestricted admins: filtered, paginated, and its chain checked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from facegate.service.deps import GlobalAdminKey, StateDep
from facegate.service.schemas import AuditPage, AuditRecordPublic, AuditVerification

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", response_model=AuditPage, summary="Audit records, newest first.")
def query(
    state: StateDep,
    key: GlobalAdminKey,
    action: Annotated[str | None, Query(max_length=64, examples=["identify"])] = None,
    collection: Annotated[str | None, Query(max_length=64)] = None,
    key_id: Annotated[str | None, Query(max_length=16)] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601, inclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # SQLite integers are 64-bit
) -> AuditPage:
    records = state.audit.query(
        action=action,
        collection=collection,
        key_id=key_id,
        since=since,
        limit=limit,
        offset=offset,
    )
    return AuditPage(items=[AuditRecordPublic.of(r) for r in records], limit=limit, offset=offset)


@router.get("/verify", response_model=AuditVerification, summary="Check the hash chain end to end.")
def verify_chain(state: StateDep, key: GlobalAdminKey) -> AuditVerification:
    broken = state.audit.verify()
    return AuditVerification(intact=broken is None, first_broken_seq=broken)
