"""CyberTipline-ready reports of confirmed review jobs: the XML export or a readable summary.

The reporter's details come from the server's HASHWATCH_REPORTER_* settings, each of which a
request may replace; another organisation's job is a 404 like a missing one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from hashwatch import reports
from hashwatch.api.auth import get_state, require
from hashwatch.api.schemas import MAX_ID
from hashwatch.api.state import Principal

router = APIRouter(prefix="/v1/reports", tags=["reports"])

Reviewer = Annotated[Principal, Depends(require("review"))]
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="The review job's id")]
Detail = Annotated[str | None, Query(max_length=200)]


@router.get(
    "/{job_id}",
    summary="A confirmed job's CyberTipline report: XML (the API's field names) or text",
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {}, "text/plain": {}}},
        404: {"description": "No such job in your organisation"},
        409: {"description": "The job is not confirmed"},
    },
)
def report(
    request: Request,
    who: Reviewer,
    job_id: JobId,
    format: Annotated[str, Query(pattern="^(xml|text)$")] = "xml",
    contact_name: Detail = None,
    email: Detail = None,
    phone: Detail = None,
    service: Detail = None,
) -> Response:
    reporter = reports.Reporter.from_env(
        who.organisation, contact_name=contact_name, email=email, phone=phone, service=service
    )
    with get_state(request).store.session() as session:
        made = reports.get_report(session, who.organisation_id, job_id, reporter)
    if format == "text":
        return Response(reports.summary(made), media_type="text/plain; charset=utf-8")
    return Response(
        reports.to_xml(made),
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="cybertipline-job-{job_id}.xml"'},
    )
