"""Sending a confirmed job's report to NCMEC's CyberTipline Reporting API (or a test server).

The API's flow, each step a POST with HTTP basic authentication and an XML answer:

1. /submit with the `<report>` document opens a report and answers its report id;
2. /upload, a multipart form of the report id and one file, answers the file's id;
3. /fileinfo with the file's `<fileDetails>` document (hashes, classification, viewed flag);
4. /finish with the report id closes the report and answers the ids of its files.

/retract withdraws a report that was opened but not finished: `submit_job` calls it when a step
after /submit fails, so that no half-made report is left open, and records the failure on the
job's ReportSubmission. The base URL is configurable (NCMEC's production and test environments,
or a local fake in tests); docs/cybertipline.md describes the documents and what is unconfirmed.

HTTP lives only here; hashwatch.reports builds the documents.
"""

from __future__ import annotations

import ipaddress
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from types import TracebackType
from typing import Any, NoReturn

import httpx2
from sqlalchemy import select
from sqlalchemy.orm import Session

from hashwatch import __version__, audit
from hashwatch.errors import (
    Conflict,
    CyberTiplineError,
    HashwatchError,
    InvalidInput,
    MediaStoreError,
)
from hashwatch.mediastore import MediaStore
from hashwatch.reports import Reporter, build_report, file_details_xml, report_xml
from hashwatch.store.models import ReportSubmission, ReviewJob, utcnow

__all__ = [
    "PASSWORD_ENV",
    "PRODUCTION_URL",
    "TESTING_URL",
    "USER_ENV",
    "CyberTiplineClient",
    "CyberTiplineError",
    "SubmissionState",
    "submit_job",
]

#: NCMEC's published base URLs: production, and the test environment for trying a client out.
PRODUCTION_URL = "https://report.cybertip.org/ispws"
TESTING_URL = "https://exttest.cybertip.org/ispws"
USER_ENV = "HASHWATCH_CYBERTIP_USER"
PASSWORD_ENV = "HASHWATCH_CYBERTIP_PASSWORD"

#: Tries per step. /submit and /upload each make something on the server, so they are tried
#: again only when the request cannot have reached it (no connection) or the server said it is
#: busy (429, 503); the other steps are safe to repeat after any network error or 5xx.
ATTEMPTS = 3
BACKOFF_SECONDS = 1.0
TIMEOUT = httpx2.Timeout(60.0, connect=10.0)
#: The API answers a few hundred bytes of XML; anything much larger is not its answer.
MAX_ANSWER_BYTES = 1_000_000

#: Some of the API's documented response codes, to make its errors readable.
RESPONSE_CODES = {
    1000: "server error",
    1100: "save failed",
    1110: "upload failed",
    1111: "file upload failed",
    1210: "resource not found",
    2000: "authentication required",
    3000: "not authorised",
    3100: "not authorised to make submissions",
    4000: "invalid request",
    4100: "validation failed",
    4110: "malformed XML",
    4200: "malformed file",
    5001: "report does not exist",
    5002: "file does not exist",
    5101: "report already retracted",
    5102: "report already finished",
}

_HINTS = {
    401: f" (check {USER_ENV} and {PASSWORD_ENV})",
    403: " (these credentials may not submit reports)",
}


class SubmissionState:
    """Where a ReportSubmission stands."""

    STARTED = "started"  # recorded; nothing sent yet
    SUBMITTED = "submitted"  # the report is open on the server, files going up
    FINISHED = "finished"  # the server closed the report: it is made
    FAILED = "failed"  # a step failed (see error); an opened report was retracted


class CyberTiplineClient:
    """The CyberTipline Reporting API at `base_url`, with basic authentication."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        client: httpx2.Client | None = None,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF_SECONDS,
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        if not username or not password:
            raise InvalidInput(
                f"CyberTipline credentials are needed: set {USER_ENV} and {PASSWORD_ENV}"
            )
        self._auth = httpx2.BasicAuth(username, password)
        self._own_client = client is None
        self._http = client if client is not None else httpx2.Client(timeout=TIMEOUT)
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._headers = {"User-Agent": f"hashwatch/{__version__}", "Accept": "application/xml"}

    def __enter__(self) -> CyberTiplineClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._own_client:
            self._http.close()

    def submit(self, report: bytes) -> str:
        """Open a report from its `<report>` document; the report id the server gave."""
        answer = self._post("submit", content=report, xml=True, repeatable=False)
        return self._field(answer, "reportId", "submit")

    def upload(self, report_id: str, filename: str, data: bytes) -> str:
        """Attach one file to an open report; the file id the server gave."""
        answer = self._post(
            "upload",
            data={"id": report_id},
            files={"file": (filename, data, "application/octet-stream")},
            repeatable=False,
        )
        return self._field(answer, "fileId", "upload")

    def file_info(self, report_id: str, details: bytes) -> None:
        """Describe an uploaded file with its `<fileDetails>` document."""
        self._post("fileinfo", content=details, xml=True, repeatable=True)

    def finish(self, report_id: str) -> list[str]:
        """Close the report; the ids of the files it holds."""
        answer = self._post("finish", data={"id": report_id}, repeatable=True)
        return [(e.text or "").strip() for e in answer.iter("fileId") if (e.text or "").strip()]

    def retract(self, report_id: str) -> None:
        """Withdraw a report that was opened but not finished."""
        self._post("retract", data={"id": report_id}, repeatable=True)

    # --- one step ---

    def _post(
        self,
        step: str,
        *,
        repeatable: bool,
        content: bytes | None = None,
        xml: bool = False,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> ET.Element:
        url = f"{self.base_url}/{step}"
        headers = dict(self._headers)
        if xml:
            headers["Content-Type"] = "text/xml; charset=utf-8"
        problem = ""
        for attempt in range(self._attempts):
            try:
                response = self._http.post(
                    url,
                    content=content,
                    data=data,
                    files=files,
                    headers=headers,
                    auth=self._auth,
                )
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                problem = f"could not connect ({type(exc).__name__}: {exc})"
            except httpx2.RequestError as exc:
                problem = f"the request failed ({type(exc).__name__}: {exc})"
                if not repeatable:
                    # It may have reached the server: a second try could open a second report.
                    self._fail(step, problem)
            else:
                if response.status_code == 200:
                    return self._answer(step, response)
                problem = f"the server answered {_status(response)}"
                busy = response.status_code in (429, 503)
                if response.status_code < 500 and not busy:
                    self._fail(step, problem + _HINTS.get(response.status_code, ""))
                if not repeatable and not busy:
                    self._fail(step, problem)
            if attempt + 1 < self._attempts:
                time.sleep(self._backoff * 2**attempt)
        self._fail(step, f"{problem}; gave up after {self._attempts} tries")

    def _answer(self, step: str, response: httpx2.Response) -> ET.Element:
        body = response.content
        if len(body) > MAX_ANSWER_BYTES:
            self._fail(step, f"the answer is {len(body)} bytes, not the API's short XML")
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            self._fail(step, f"the answer is not XML: {_snippet(response.text)}")
        code_text = (root.findtext("responseCode") or "").strip()
        try:
            code = int(code_text)
        except ValueError:
            self._fail(step, f"the answer has no response code: {_snippet(response.text)}")
        if code != 0:
            description = (root.findtext("responseDescription") or "").strip()
            known = RESPONSE_CODES.get(code, "")
            said = "; ".join(dict.fromkeys(p for p in (known, description) if p))
            self._fail(
                step, f"the server refused it with code {code}" + (f": {said}" if said else "")
            )
        return root

    def _field(self, answer: ET.Element, name: str, step: str) -> str:
        value = (answer.findtext(name) or "").strip()
        if not value:
            self._fail(step, f"the answer has no {name}")
        return value

    def _fail(self, step: str, problem: str) -> NoReturn:
        raise CyberTiplineError(f"CyberTipline {step} at {self.base_url} failed: {problem}")


def normalise_base_url(base_url: str) -> str:
    """The API's base URL without a trailing slash. https only, except to this machine (a test
    server): the credentials travel in every request."""
    try:
        url = httpx2.URL(base_url.strip())
    except httpx2.InvalidURL as exc:
        raise InvalidInput(f"{base_url!r} is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidInput(f"the CyberTipline URL must start with https://, got {base_url!r}")
    if url.userinfo or url.query or url.fragment:
        raise InvalidInput("the CyberTipline URL must hold no user name, password or query")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise InvalidInput(
            "the CyberTipline URL must use https:// (plain http is only for a test server on "
            "this machine)"
        )
    return str(url).rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _status(response: httpx2.Response) -> str:
    text = _snippet(response.text)
    status = f"{response.status_code} {response.reason_phrase}".strip()
    return f"{status}: {text}" if text else status


def _snippet(text: str) -> str:
    return " ".join(text.split())[:200]


# --- the whole flow ----------------------------------------------------------------------------


def submit_job(
    session: Session,
    client: CyberTiplineClient,
    job: ReviewJob,
    reporter: Reporter,
    vault: MediaStore | None = None,
    *,
    actor: str = "hashwatch",
) -> ReportSubmission:
    """Report a confirmed job: submit, upload each retained file with its details, finish.

    Refuses up front (nothing sent) a job that is not confirmed, one already reported, a reporter
    without an email, and retained media without a media store to read it. Once sending starts,
    a failing step does not raise: the submission is returned (and recorded, with the audit
    event, in the caller's transaction) as failed with the reason, after retracting the report
    if one was opened. Files whose media was not retained are described by their hashes in the
    report's additionalInfo and are not uploaded.
    """
    report = build_report(session, job, reporter)
    if not reporter.email:
        raise InvalidInput(
            "the CyberTipline requires the reporting person's email: give one "
            "(HASHWATCH_REPORTER_EMAIL or --email)"
        )
    kept = [file for file in report.files if file.has_media]
    if kept and vault is None:
        raise InvalidInput(
            f"{len(kept)} of the job's files are kept in the encrypted media store; "
            "it is needed to upload them (set HASHWATCH_MEDIA_KEY)"
        )
    done = session.scalar(
        select(ReportSubmission).where(
            ReportSubmission.job_id == job.id,
            ReportSubmission.state == SubmissionState.FINISHED,
        )
    )
    if done is not None:
        raise Conflict(
            f"review job {job.id} was already reported (CyberTipline report {done.remote_id})"
        )

    submission = ReportSubmission(
        job_id=job.id, base_url=client.base_url, state=SubmissionState.STARTED
    )
    session.add(submission)
    session.flush()
    uploaded: list[str] = []
    try:
        remote_id = client.submit(report_xml(report))
        submission.remote_id = remote_id
        submission.state = SubmissionState.SUBMITTED
        session.flush()
        for file in kept:
            assert vault is not None and file.media_name is not None
            data = vault.get(file.media_name)
            file_id = client.upload(remote_id, file.original_file_name, data)
            details = file_details_xml(report, file, report_id=remote_id, file_id=file_id)
            client.file_info(remote_id, details)
            uploaded.append(file_id)
        client.finish(remote_id)
    except (CyberTiplineError, MediaStoreError) as exc:
        submission.state = SubmissionState.FAILED
        submission.error = _failure(client, submission.remote_id, exc)
    else:
        submission.state = SubmissionState.FINISHED
    submission.finished_at = utcnow()
    detail: dict[str, Any] = {
        "job": job.id,
        "state": submission.state,
        "remote_id": submission.remote_id,
        "base_url": client.base_url,
        "files": len(report.files),
        "uploaded": len(uploaded),
    }
    if submission.error:
        detail["error"] = submission.error
    audit.record(session, actor, "report.submit", organisation_id=job.organisation_id, **detail)
    session.flush()
    return submission


def _failure(client: CyberTiplineClient, remote_id: str | None, exc: HashwatchError) -> str:
    message = str(exc)
    if remote_id is None:
        return message
    try:
        client.retract(remote_id)
    except CyberTiplineError as retract_exc:
        return f"{message}; retracting report {remote_id} failed too: {retract_exc}"
    return f"{message}; report {remote_id} was retracted"
