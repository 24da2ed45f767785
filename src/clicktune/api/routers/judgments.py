"""Judged sets: the graded judgments a task may be decided on (docs/evaluation.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from clicktune.api.bodies import documented_body, parse_bulk_body, raw_body
from clicktune.api.deps import EngineDep, SettingsDep
from clicktune.api.schemas.judgments import (
    JudgmentSetList,
    JudgmentSetOut,
    JudgmentSetReplaced,
    JudgmentsIn,
)
from clicktune.ingest.fields import ClientId
from clicktune.ingest.judgments import JudgmentIn, check_judgment_count, check_judgments
from clicktune.logs import get_logger
from clicktune.store import judgments as store
from clicktune.store.engine import read_transaction, write_transaction

router = APIRouter(prefix="/judgments", tags=["judgments"])
log = get_logger(__name__)

SetId = Annotated[ClientId, Path(description="The judged set's id, chosen by the client.")]


@router.put(
    "/{set_id}",
    response_model=JudgmentSetReplaced,
    openapi_extra=documented_body(application_json=JudgmentsIn, application_x_ndjson=JudgmentIn),
)
def replace_judgment_set(
    set_id: SetId,
    request: Request,
    raw: Annotated[bytes, Depends(raw_body)],
    engine: EngineDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Create or replace the set, all or nothing: `{"judgments": [...]}` or NDJSON, one a line."""
    judgments = parse_bulk_body(
        request,
        raw,
        envelope=JudgmentsIn,
        field="judgments",
        line=JudgmentIn,
        max_line_bytes=settings.max_request_bytes,
        check_count=lambda count: check_judgment_count(count, settings),
    )
    rows = check_judgments(judgments, settings)
    with write_transaction(engine) as conn:
        summary, unknown = store.replace_judgment_set(conn, set_id, rows)
    log.info(
        "judgment_set_replaced",
        set_id=set_id,
        queries=summary.queries,
        judgments=summary.judgments,
        unknown_objects=unknown,
    )
    return {
        "set_id": summary.set_id,
        "queries": summary.queries,
        "judgments": summary.judgments,
        "unknown_objects": unknown,
    }


@router.get("", response_model=JudgmentSetList)
def list_judgment_sets(engine: EngineDep) -> dict[str, Any]:
    """Every judged set's summary, by set_id."""
    with read_transaction(engine) as conn:
        return {"data": [_summary(s) for s in store.list_judgment_sets(conn)]}


@router.get("/{set_id}", response_model=JudgmentSetOut)
def get_judgment_set(set_id: SetId, engine: EngineDep) -> dict[str, Any]:
    """The set's summary and its first judgments."""
    with read_transaction(engine) as conn:
        summary = store.get_judgment_set(conn, set_id)
        if summary is None:
            raise store.JudgmentSetNotFound(set_id)
        sample = store.sample_judgments(conn, set_id)
    return {**_summary(summary), "sample": [j._asdict() for j in sample]}


@router.delete("/{set_id}", status_code=204, response_class=Response, response_model=None)
def delete_judgment_set(set_id: SetId, engine: EngineDep) -> Response:
    with write_transaction(engine) as conn:
        deleted = store.delete_judgment_set(conn, set_id)
    if not deleted:
        raise store.JudgmentSetNotFound(set_id)
    log.info("judgment_set_deleted", set_id=set_id)
    return Response(status_code=204)


def _summary(summary: store.JudgmentSetSummary) -> dict[str, Any]:
    return {
        "set_id": summary.set_id,
        "queries": summary.queries,
        "judgments": summary.judgments,
        "updated_at": summary.updated_at,
    }
