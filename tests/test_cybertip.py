"""The CyberTipline submission client against a fake CyberTipline on 127.0.0.1.

The fake speaks the API's flow as docs/cybertipline.md records it (basic authentication; /submit,
/upload, /fileinfo, /finish, /retract; XML answers with a responseCode) and records every call.
Nothing here reaches any other host.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from typer.testing import CliRunner

from hashwatch import cybertip
from hashwatch.cli import app as cli_app
from hashwatch.cybertip import CyberTiplineClient, CyberTiplineError, SubmissionState, submit_job
from hashwatch.errors import Conflict, InvalidInput
from hashwatch.mediastore import MediaStore, generate_key
from hashwatch.store import Store
from hashwatch.store.models import AuditEvent, ReportSubmission, ReviewJob
from tests.test_reports import REPORTER, MadeJob, check_file, check_report, make_job

USER, PASSWORD = "esp-test", "s3cret:with:colons"


@dataclass
class FakeCyberTipline:
    """Records calls; `fail` maps a step to how its nth call fails ("code" or an HTTP status)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: dict[str, tuple[int, str | int]] = field(default_factory=dict)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(5000))
    url: str = ""

    def reset(self) -> None:
        self.calls.clear()
        self.fail.clear()
        self.reports.clear()

    def steps(self) -> list[str]:
        return [step for step, _ in self.calls]


def _answer(root: str, code: int = 0, description: str = "Success", **fields: Any) -> Response:
    body = ET.Element(root)
    ET.SubElement(body, "responseCode").text = str(code)
    if root == "reportResponse":
        ET.SubElement(body, "responseDescription").text = description
    for name, value in fields.items():
        if isinstance(value, list):
            holder = ET.SubElement(body, "files")
            for item in value:
                ET.SubElement(holder, "fileId").text = item
        else:
            ET.SubElement(body, name).text = str(value)
    return Response(ET.tostring(body, xml_declaration=True), media_type="application/xml")


def make_app(fake: FakeCyberTipline) -> Starlette:
    async def endpoint(request: Request) -> Response:
        step = request.url.path.rsplit("/", 1)[-1]
        expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            fake.calls.append((step, {"unauthorised": True}))
            return Response("authentication required", status_code=401)
        record: dict[str, Any] = {}
        if step in ("submit", "fileinfo"):
            assert request.headers["content-type"].startswith("text/xml")
            record["xml"] = await request.body()
        else:
            async with request.form() as form:
                record["id"] = form.get("id")
                upload = form.get("file")
                if upload is not None and not isinstance(upload, str):
                    record["filename"] = upload.filename
                    record["data"] = await upload.read()
        fake.calls.append((step, record))
        count = sum(1 for s, _ in fake.calls if s == step)
        if step in fake.fail and fake.fail[step][0] == count:
            how = fake.fail[step][1]
            if isinstance(how, int):
                return Response("unavailable", status_code=how)
            return _answer("reportResponse", 4100, "Validation failed: " + how)
        return handle(fake, step, record)

    paths = ("submit", "upload", "fileinfo", "finish", "retract")
    return Starlette(routes=[Route(f"/ispws/{p}", endpoint, methods=["POST"]) for p in paths])


def handle(fake: FakeCyberTipline, step: str, record: dict[str, Any]) -> Response:
    if step == "submit":
        root = ET.fromstring(record["xml"])
        if root.tag != "report":
            return _answer("reportResponse", 4110, "Malformed XML submittal")
        report_id = str(next(fake.ids))
        fake.reports[report_id] = {"report": root, "files": {}, "details": {}, "state": "open"}
        return _answer("reportResponse", reportId=report_id)
    if step == "fileinfo":
        root = ET.fromstring(record["xml"])
        report = fake.reports.get(root.findtext("reportId") or "")
        file_id = root.findtext("fileId") or ""
        if report is None or file_id not in report["files"]:
            return _answer("reportResponse", 5002, "File does not exist")
        report["details"][file_id] = root
        return _answer("reportResponse", reportId=root.findtext("reportId"))
    report = fake.reports.get(record["id"] or "")
    if report is None or report["state"] != "open":
        return _answer("reportResponse", 5001, "Report does not exist")
    if step == "upload":
        file_id = hashlib.md5(record["data"]).hexdigest()[:16] + str(len(report["files"]))
        report["files"][file_id] = record["data"]
        md5 = hashlib.md5(record["data"]).hexdigest()
        return _answer("reportResponse", reportId=record["id"], fileId=file_id, hash=md5)
    if step == "finish":
        report["state"] = "finished"
        return _answer("reportDoneResponse", reportId=record["id"], files=list(report["files"]))
    report["state"] = "retracted"
    return _answer("reportResponse", reportId=record["id"])


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeCyberTipline]:
    fake = FakeCyberTipline()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(make_app(fake), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{listener.getsockname()[1]}/ispws"
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the fake CyberTipline did not start"
    yield fake
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def fake(fake_server: FakeCyberTipline) -> FakeCyberTipline:
    fake_server.reset()
    return fake_server


@pytest.fixture
def vault(tmp_path: Path) -> MediaStore:
    return MediaStore.from_config(tmp_path / "media", generate_key())


def client_for(fake: FakeCyberTipline, password: str = PASSWORD) -> CyberTiplineClient:
    return CyberTiplineClient(fake.url, USER, password, backoff=0)


def submit(store: Store, fake: FakeCyberTipline, made: MadeJob, vault: MediaStore | None) -> Any:
    with client_for(fake) as client, store.session() as session:
        job = session.get(ReviewJob, made.job_id)
        assert job is not None
        return submit_job(session, client, job, REPORTER, vault, actor="test")


def stored(store: Store, submission_id: int) -> ReportSubmission:
    with store.session() as session:
        found = session.get(ReportSubmission, submission_id)
        assert found is not None
        session.expunge(found)
        return found


# --- the whole flow ----------------------------------------------------------------------------


def test_submit_job_runs_the_whole_flow(
    store: Store, fake: FakeCyberTipline, vault: MediaStore
) -> None:
    made = make_job(store, vault=vault)
    submission = submit(store, fake, made, vault)

    assert fake.steps() == [
        "submit",
        *["upload", "fileinfo"] * 3,
        "finish",
    ]
    saved = stored(store, submission.id)
    assert saved.state == SubmissionState.FINISHED and saved.error is None
    assert saved.remote_id in fake.reports and saved.base_url == fake.url
    assert saved.finished_at is not None

    remote = fake.reports[saved.remote_id]
    assert remote["state"] == "finished"
    check_report(remote["report"])
    uploads = [record for step, record in fake.calls if step == "upload"]
    assert [u["filename"] for u in uploads] == ["cat.jpg", "dog.png", "bird.gif"]
    assert [u["data"] for u in uploads] == [
        f"benign bytes of {n}".encode() for n in ("cat.jpg", "dog.png", "bird.gif")
    ]
    assert all(u["id"] == saved.remote_id for u in uploads)
    details = list(remote["details"].values())
    assert len(details) == 3
    for detail, hashes in zip(details, made.hashes, strict=True):
        check_file(detail, hashes, "A2", viewed=True)
        assert detail.findtext("reportId") == saved.remote_id

    with store.session() as session:
        audit_event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "report.submit")
        ).one()
        assert audit_event.actor == "test" and audit_event.organisation_id == made.organisation_id
        assert audit_event.detail["state"] == "finished" and audit_event.detail["uploaded"] == 3


def test_a_failure_mid_way_is_recorded_and_the_report_retracted(
    store: Store, fake: FakeCyberTipline, vault: MediaStore
) -> None:
    made = make_job(store, vault=vault)
    fake.fail["fileinfo"] = (2, "industryClassification")
    submission = submit(store, fake, made, vault)

    assert fake.steps() == ["submit", "upload", "fileinfo", "upload", "fileinfo", "retract"]
    saved = stored(store, submission.id)
    assert saved.state == SubmissionState.FAILED
    assert saved.error is not None
    assert "CyberTipline fileinfo" in saved.error and "code 4100" in saved.error
    assert "validation failed" in saved.error and "industryClassification" in saved.error
    assert f"report {saved.remote_id} was retracted" in saved.error
    assert fake.reports[saved.remote_id or ""]["state"] == "retracted"


def test_wrong_credentials_fail_at_submit_with_a_hint(
    store: Store, fake: FakeCyberTipline, vault: MediaStore
) -> None:
    made = make_job(store, vault=vault)
    with CyberTiplineClient(fake.url, USER, "wrong", backoff=0) as client, store.session() as s:
        job = s.get(ReviewJob, made.job_id)
        assert job is not None
        submission = submit_job(s, client, job, REPORTER, vault)
        submission_id = submission.id
    assert fake.steps() == ["submit"]  # no report was opened, so none to retract
    saved = stored(store, submission_id)
    assert saved.state == SubmissionState.FAILED and saved.remote_id is None
    assert "401" in (saved.error or "") and cybertip.USER_ENV in (saved.error or "")


def test_refusals_before_anything_is_sent(
    store: Store, fake: FakeCyberTipline, vault: MediaStore
) -> None:
    made = make_job(store, vault=vault)
    with client_for(fake) as client, store.session() as session:
        job = session.get(ReviewJob, made.job_id)
        assert job is not None
        no_email = REPORTER.__class__(REPORTER.organisation, email="")
        with pytest.raises(InvalidInput, match="email"):
            submit_job(session, client, job, no_email, vault)
        with pytest.raises(InvalidInput, match="media store"):
            submit_job(session, client, job, REPORTER, None)
    assert fake.calls == []

    submit(store, fake, made, vault)
    with pytest.raises(Conflict, match="already reported"):
        submit(store, fake, made, vault)


def test_files_without_media_are_reported_by_their_hashes_only(
    store: Store, fake: FakeCyberTipline
) -> None:
    made = make_job(store, files=("a.jpg", "b.jpg"))
    submission = submit(store, fake, made, None)
    assert fake.steps() == ["submit", "finish"]
    assert stored(store, submission.id).state == SubmissionState.FINISHED
    notes = fake.reports[submission.remote_id]["report"].findtext("additionalInfo")
    assert made.hashes[1]["md5"] in notes


# --- the client ----------------------------------------------------------------------------------


def test_repeatable_steps_are_retried_and_creating_ones_are_not(fake: FakeCyberTipline) -> None:
    with client_for(fake) as client:
        report_id = client.submit(b"<report/>")
        fake.fail["finish"] = (1, 503)
        assert client.finish(report_id) == []
        assert fake.steps() == ["submit", "finish", "finish"]

        fake.fail["submit"] = (2, 500)
        with pytest.raises(CyberTiplineError, match=r"submit .* 500"):
            client.submit(b"<report/>")
        assert fake.steps().count("submit") == 2


def test_the_client_refuses_plain_http_to_other_hosts() -> None:
    with pytest.raises(InvalidInput, match="https"):
        CyberTiplineClient("http://report.example.org/ispws", USER, PASSWORD)
    with pytest.raises(InvalidInput, match="credentials"):
        CyberTiplineClient(cybertip.TESTING_URL, "", "")
    assert CyberTiplineClient("https://h.example/ispws/", "u", "p").base_url == (
        "https://h.example/ispws"
    )


def test_an_unreachable_server_is_a_clear_error() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    client = CyberTiplineClient(
        f"http://127.0.0.1:{port}/ispws", USER, PASSWORD, attempts=2, backoff=0
    )
    with client, pytest.raises(CyberTiplineError, match=r"could not connect.*2 tries"):
        client.submit(b"<report/>")


def test_a_non_xml_answer_is_a_clear_error() -> None:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, text="<html>maintenance</html")

    with httpx2.Client(transport=httpx2.MockTransport(answer)) as http:
        client = CyberTiplineClient("https://127.0.0.1/ispws", USER, PASSWORD, client=http)
        with pytest.raises(CyberTiplineError, match="not XML: <html>maintenance"):
            client.submit(b"<report/>")


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_submit(store: Store, store_url: str, fake: FakeCyberTipline, tmp_path: Path) -> None:
    key = generate_key()
    vault = MediaStore.from_config(tmp_path / "media", key)
    made = make_job(store, vault=vault)
    env = {
        cybertip.USER_ENV: USER,
        cybertip.PASSWORD_ENV: PASSWORD,
        "HASHWATCH_MEDIA_KEY": key,
        "HASHWATCH_REPORTER_EMAIL": "cli@example.org",
    }
    args = [
        "reports",
        "submit",
        str(made.job_id),
        "--org",
        "platform",
        "--base-url",
        fake.url,
        "--media-dir",
        str(tmp_path / "media"),
        "--db",
        store_url,
    ]
    result = CliRunner().invoke(cli_app, args, env=env)
    assert result.exit_code == 0, result.output
    assert fake.steps()[-1] == "finish"
    submitted = fake.reports[fake.calls[-1][1]["id"]]["report"]
    assert submitted.findtext("reporter/reportingPerson/email") == "cli@example.org"

    fake.reset()
    again = CliRunner().invoke(cli_app, args, env=env)
    assert again.exit_code == 1 and "already reported" in again.stderr
    assert fake.calls == []
