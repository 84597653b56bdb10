"""CyberTipline-ready reports: the XML follows the structure docs/cybertipline.md records, carries
every file's hashes, and survives hostile text; the API and CLI export it.

Jobs and events are made directly through the models (review.py is not needed to test reports).
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hashwatch import keys, organisations, reports
from hashwatch.api.app import create_app
from hashwatch.api.settings import ServiceSettings
from hashwatch.cli import app as cli_app
from hashwatch.errors import Conflict, NotFound
from hashwatch.mediastore import MediaStore
from hashwatch.store import Store
from hashwatch.store.models import JobState, MatchEvent, ReviewJob

HOSTILE = "u<1>&\"quoted\" 'single' ]]> \x07bell"
HOSTILE_CLEAN = "u<1>&\"quoted\" 'single' ]]> bell"
REPORTER = reports.Reporter(
    "Example Platform", "Ada Q. Lovelace", "safety@example.org", "+1 555 0100", "Example Photos"
)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# --- the structure documented in docs/cybertipline.md: each element's children, in the order
# the schema fixes (an element may be left out, never reordered) ------------------------------
ORDER = {
    "report": [
        "incidentSummary",
        "internetDetails",
        "lawEnforcement",
        "reporter",
        "personOrUserReported",
        "intendedRecipient",
        "victim",
        "additionalInfo",
    ],
    "incidentSummary": [
        "incidentType",
        "platform",
        "escalateToHighPriority",
        "reportAnnotations",
        "incidentDateTime",
        "incidentDateTimeDescription",
    ],
    "reporter": [
        "reportingPerson",
        "contactPerson",
        "companyTemplate",
        "termsOfService",
        "legalURL",
    ],
    "reportingPerson": [
        "firstName",
        "lastName",
        "phone",
        "email",
        "address",
        "age",
        "dateOfBirth",
    ],
    "personOrUserReported": [
        "personOrUserReportedPerson",
        "vehicleDescription",
        "espIdentifier",
        "espService",
        "compromisedAccount",
        "screenName",
        "displayName",
        "profileUrl",
        "profileBio",
        "ipCaptureEvent",
        "deviceId",
        "thirdPartyUserReported",
        "priorCTReports",
        "groupIdentifier",
        "accountTemporarilyDisabled",
        "accountPermanentlyDisabled",
        "estimatedLocation",
        "allEmailsReported",
        "associatedAccount",
        "additionalInfo",
    ],
    "fileDetails": [
        "reportId",
        "fileId",
        "fileName",
        "originalFileName",
        "uploadedToEspTimestamp",
        "locationOfFile",
        "fileViewedByEsp",
        "exifViewedByEsp",
        "publiclyAvailable",
        "fileRelevance",
        "fileAnnotations",
        "industryClassification",
        "originalFileHash",
        "ipCaptureEvent",
        "deviceId",
        "details",
        "additionalInfo",
    ],
    "ipCaptureEvent": ["ipAddress", "eventName", "dateTime", "possibleProxy", "port"],
    "webPageIncident": ["url", "additionalInfo"],
    "details": ["nameValuePair"],
    "nameValuePair": ["name", "value"],
    "fileAnnotations": list(reports.FILE_ANNOTATIONS),
}
REQUIRED = {
    "report": ["incidentSummary", "internetDetails", "reporter"],
    "incidentSummary": ["incidentType", "incidentDateTime"],
    "reporter": ["reportingPerson"],
    "reportingPerson": ["email"],
    "ipCaptureEvent": ["ipAddress"],
    "fileDetails": ["fileViewedByEsp", "industryClassification", "originalFileHash"],
}
INCIDENT_TYPES = {
    "Child Pornography (possession, manufacture, and distribution)",
    "Child Sex Trafficking",
    "Child Sex Tourism",
    "Child Sexual Molestation",
    "Misleading Domain Name",
    "Misleading Words or Digital Images on the Internet",
    "Online Enticement of Children for Sexual Acts",
    "Unsolicited Obscene Material Sent to a Child",
}


def check_structure(element: ET.Element) -> None:
    """Every element with a documented sequence has only known children, in order, and its
    required ones; recursively."""
    tag = element.tag
    children = [child.tag for child in element]
    if tag in ORDER:
        sequence = ORDER[tag]
        unknown = [child for child in children if child not in sequence]
        assert not unknown, f"{tag} has undocumented children {unknown}"
        positions = [sequence.index(child) for child in children]
        assert positions == sorted(positions), f"{tag} children out of order: {children}"
    for required in REQUIRED.get(tag, []):
        assert required in children, f"{tag} lacks {required}"
    for child in element:
        check_structure(child)


def check_report(report: ET.Element) -> None:
    assert report.tag == "report"
    check_structure(report)
    assert report.findtext("incidentSummary/incidentType") in INCIDENT_TYPES
    when = report.findtext("incidentSummary/incidentDateTime")
    assert when is not None and datetime.fromisoformat(when).tzinfo is not None


def check_file(file: ET.Element, hashes: dict[str, str], classification: str, viewed: bool) -> None:
    assert file.tag == "fileDetails"
    check_structure(file)
    found = {e.get("hashType"): e.text for e in file.findall("originalFileHash")}
    assert found == {"MD5": hashes["md5"], "SHA1": hashes["sha1"], "SHA256": hashes["sha256"]}
    details = file.find("details")
    assert details is not None and details.get("type") == "HASH"
    pairs = {p.findtext("name"): p.findtext("value") for p in details.findall("nameValuePair")}
    assert pairs == {"PDQ": hashes["pdq"]}
    assert file.findtext("industryClassification") == classification
    assert file.findtext("fileViewedByEsp") == ("true" if viewed else "false")


# --- factories ---------------------------------------------------------------------------------


def content_hashes(seed: str) -> dict[str, str]:
    data = seed.encode()
    return {
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "pdq": hashlib.sha256(b"pdq" + data).hexdigest(),
    }


@dataclass
class MadeJob:
    job_id: int
    organisation_id: int
    event_ids: list[int]
    hashes: list[dict[str, str]]


def make_job(
    store: Store,
    org: str = "platform",
    *,
    files: Sequence[str] = ("cat.jpg", "dog.png", "bird.gif"),
    user_ref: str = "user-42",
    state: str = JobState.CONFIRMED,
    classification: str | None = "A2",
    viewed: bool = True,
    annotations: Sequence[str] = ("viral", "seen in a group chat"),
    vault: MediaStore | None = None,
) -> MadeJob:
    """A review job with one match event per file name, made through the models."""
    with store.session() as session:
        organisation = organisations.get_or_create_organisation(session, org)
        job = ReviewJob(
            organisation_id=organisation.id,
            user_ref=user_ref,
            state=state,
            severity=1,
            classification=classification if state == JobState.CONFIRMED else None,
            annotations=list(annotations),
            viewed=viewed,
            decided_at=T0 + timedelta(days=1) if state != JobState.OPEN else None,
            decided_by="reviewer@example.org" if state != JobState.OPEN else None,
        )
        session.add(job)
        session.flush()
        made = MadeJob(job.id, organisation.id, [], [])
        for number, name in enumerate(files):
            hashes = content_hashes(f"{org}/{name}")
            media_name = vault.put(f"benign bytes of {name}".encode()) if vault else None
            event = MatchEvent(
                organisation_id=organisation.id,
                job_id=job.id,
                created_at=T0 + timedelta(minutes=number, seconds=30),
                content_id=f"content-{number}",
                user_ref=user_ref,
                uploaded_at=T0 + timedelta(minutes=number),
                ip_address=f"203.0.113.{10 + number % 2}",
                extra={"file_name": name, "url": f"https://photos.example/{number}"},
                hashes=hashes,
                matches=[
                    {
                        "list": "verified",
                        "list_id": 1,
                        "entry_id": 100 + number,
                        "signal_type": "pdq",
                        "value": hashes["pdq"],
                        "distance": number,
                        "category": "A",
                        "labels": [],
                        "source": "",
                        "variant": None,
                    }
                ],
                media_name=media_name,
                media_type="image/png" if media_name else None,
            )
            session.add(event)
            session.flush()
            made.event_ids.append(event.id)
            made.hashes.append(hashes)
    return made


def build(store: Store, made: MadeJob, reporter: reports.Reporter = REPORTER) -> Any:
    with store.session() as session:
        return reports.get_report(session, made.organisation_id, made.job_id, reporter)


# --- the XML -----------------------------------------------------------------------------------


def test_export_of_a_confirmed_job_follows_the_documented_structure(store: Store) -> None:
    made = make_job(store, user_ref=HOSTILE, annotations=("Viral", "found <in> a & group"))
    report = build(store, made)
    root = ET.fromstring(reports.to_xml(report))
    assert root.tag == "cybertiplineExport" and [c.tag for c in root] == ["report", "files"]
    assert root.get("job") == str(made.job_id)

    report_element = root[0]
    check_report(report_element)
    assert report_element.findtext("reporter/reportingPerson/email") == "safety@example.org"
    assert report_element.findtext("reporter/reportingPerson/firstName") == "Ada Q."
    assert report_element.findtext("reporter/reportingPerson/lastName") == "Lovelace"
    user = report_element.find("personOrUserReported")
    assert user is not None
    # Hostile text comes back exactly (escaped on the way out), less what XML cannot carry.
    assert user.findtext("espIdentifier") == HOSTILE_CLEAN
    assert user.findtext("espService") == "Example Photos"
    assert [e.findtext("ipAddress") for e in user.findall("ipCaptureEvent")] == [
        "203.0.113.10",
        "203.0.113.11",
        "203.0.113.10",
    ]
    assert report_element.findtext("incidentSummary/incidentDateTime") == "2026-03-01T12:00:00Z"
    urls = [u.text for u in report_element.findall("internetDetails/webPageIncident/url")]
    assert urls == [f"https://photos.example/{n}" for n in range(3)]

    files = root.findall("files/fileDetails")
    assert len(files) == 3
    for file, hashes, name in zip(
        files, made.hashes, ("cat.jpg", "dog.png", "bird.gif"), strict=True
    ):
        check_file(file, hashes, "A2", viewed=True)
        assert file.findtext("originalFileName") == name
        assert file.find("reportId") is None and file.find("fileId") is None
        annotations = file.find("fileAnnotations")
        assert annotations is not None and [a.tag for a in annotations] == ["viral"]
        infos = [i.text for i in file.findall("additionalInfo")]
        assert "Reviewer annotation: found <in> a & group" in infos
        assert any(i and i.startswith("Matched list 'verified'") for i in infos)


def test_submit_documents_are_the_export_parts(store: Store) -> None:
    made = make_job(store, viewed=False, annotations=())
    report = build(store, made)
    alone = ET.fromstring(reports.report_xml(report))
    check_report(alone)
    exported = ET.fromstring(reports.to_xml(report))
    assert ET.canonicalize(ET.tostring(alone), strip_text=True) == ET.canonicalize(
        ET.tostring(exported[0]), strip_text=True
    )

    first = report.files[0]
    details = ET.fromstring(reports.file_details_xml(report, first, report_id="77", file_id="f1"))
    check_file(details, made.hashes[0], "A2", viewed=False)
    assert [c.tag for c in details][:2] == ["reportId", "fileId"]
    assert details.findtext("reportId") == "77" and details.findtext("fileId") == "f1"
    assert details.find("fileAnnotations") is None
    assert details.findtext("uploadedToEspTimestamp") == "2026-03-01T12:00:00Z"


def test_files_without_retained_media_are_listed_with_their_hashes(store: Store) -> None:
    made = make_job(store, files=("only.jpg",))
    report = build(store, made)
    notes = ET.fromstring(reports.report_xml(report)).findtext("additionalInfo") or ""
    assert "did not retain" in notes and made.hashes[0]["sha256"] in notes


def test_only_a_confirmed_job_is_reported(store: Store) -> None:
    for state in (JobState.OPEN, JobState.FALSE_POSITIVE):
        made = make_job(store, state=state, classification=None)
        with pytest.raises(Conflict, match="only a confirmed job"):
            build(store, made)


def test_another_organisations_job_is_not_found(store: Store) -> None:
    made = make_job(store, "platform")
    with store.session() as session:
        other = organisations.get_or_create_organisation(session, "other")
        with pytest.raises(NotFound):
            reports.get_report(session, other.id, made.job_id, REPORTER)
        with pytest.raises(NotFound):
            reports.get_report(session, made.organisation_id, made.job_id + 1000, REPORTER)


def test_summary_names_every_file_and_its_hashes(store: Store) -> None:
    made = make_job(store, user_ref=HOSTILE)
    text = reports.summary(build(store, made))
    for name, hashes in zip(("cat.jpg", "dog.png", "bird.gif"), made.hashes, strict=True):
        assert name in text
        assert hashes["md5"] in text and hashes["pdq"] in text
    assert HOSTILE_CLEAN in text and "\x07" not in text
    assert "Example Platform (Ada Q. Lovelace, safety@example.org, +1 555 0100)" in text
    assert "A2" in text and "viewed by the reviewer" in text


def test_annotations_name_tags_as_people_write_them(store: Store) -> None:
    written = ("Physical Harm", "violence/gore", "generative-AI", "INFANT", "seen twice")
    made = make_job(store, annotations=written)
    root = ET.fromstring(reports.to_xml(build(store, made)))
    for file in root.findall("files/fileDetails"):
        tags = file.find("fileAnnotations")
        assert tags is not None
        assert [t.tag for t in tags] == ["physicalHarm", "violenceGore", "infant", "generativeAi"]
        assert "Reviewer annotation: seen twice" in [i.text for i in file.findall("additionalInfo")]
    assert "physical harm" in reports.annotation_names()


def test_reporter_from_env_with_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHWATCH_REPORTER_EMAIL", "env@example.org")
    monkeypatch.setenv("HASHWATCH_REPORTER_NAME", "Env Person")
    made = reports.Reporter.from_env("org", email="given@example.org", phone=None)
    assert made == reports.Reporter("org", "Env Person", "given@example.org", "", "")


# --- the API -----------------------------------------------------------------------------------


@pytest.fixture
def api(store: Store) -> Iterator[TestClient]:
    settings = ServiceSettings(max_staleness=2.0, rate_limit=0, auth_cache_seconds=0)
    with TestClient(create_app(settings, store=store), raise_server_exceptions=False) as client:
        yield client


def api_key(store: Store, org: str, scopes: str) -> dict[str, str]:
    with store.session() as session:
        organisation = organisations.get_or_create_organisation(session, org)
        secret = keys.create_key(session, organisation, scopes.split(","), "test").secret
    return {"Authorization": f"Bearer {secret}"}


def test_api_returns_the_xml_and_the_summary(
    store: Store, api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HASHWATCH_REPORTER_EMAIL", "server@example.org")
    made = make_job(store)
    reviewer = api_key(store, "platform", "review")
    path = f"/v1/reports/{made.job_id}"

    response = api.get(path, headers=reviewer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    check_report(root[0])
    assert root.findtext("report/reporter/reportingPerson/email") == "server@example.org"
    for file, hashes in zip(root.findall("files/fileDetails"), made.hashes, strict=True):
        check_file(file, hashes, "A2", viewed=True)

    response = api.get(path, params={"email": "asked@example.org"}, headers=reviewer)
    assert b"asked@example.org" in response.content

    text = api.get(path, params={"format": "text"}, headers=reviewer)
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert all(name in text.text for name in ("cat.jpg", "dog.png", "bird.gif"))


def test_api_refuses_without_the_review_scope_and_hides_other_organisations(
    store: Store, api: TestClient
) -> None:
    made = make_job(store)
    path = f"/v1/reports/{made.job_id}"
    assert api.get(path).status_code == 401
    assert api.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert api.get(path, headers=api_key(store, "platform", "match")).status_code == 403
    other = api.get(path, headers=api_key(store, "other", "review"))
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    reviewer = api_key(store, "platform", "review")
    assert api.get("/v1/reports/999999", headers=reviewer).status_code == 404
    assert api.get(path, params={"format": "pdf"}, headers=reviewer).status_code == 422
    open_job = make_job(store, state=JobState.OPEN, classification=None)
    refused = api.get(f"/v1/reports/{open_job.job_id}", headers=reviewer)
    assert refused.status_code == 409


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_export_prints_the_xml_and_the_text(store: Store, store_url: str) -> None:
    made = make_job(store)
    runner = CliRunner()
    args = ["reports", "export", str(made.job_id), "--org", "platform", "--db", store_url]
    result = runner.invoke(cli_app, [*args, "--email", "cli@example.org"])
    assert result.exit_code == 0, result.output
    root = ET.fromstring(result.stdout.encode())
    check_report(root[0])
    assert root.findtext("report/reporter/reportingPerson/email") == "cli@example.org"
    assert len(root.findall("files/fileDetails")) == 3

    text = runner.invoke(cli_app, [*args, "--format", "text"])
    assert text.exit_code == 0 and "bird.gif" in text.stdout

    missing = runner.invoke(cli_app, [*args[:2], "999999", *args[3:]])
    assert missing.exit_code == 1 and "no review job 999999" in missing.stderr
