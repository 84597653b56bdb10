"""CyberTipline-ready reports: what a confirmed review job tells NCMEC, as XML and as text.

A platform's reviewer confirms a job (hashwatch.review); this module turns the job and its match
events into a `CyberTiplineReport` and writes it in the element names of NCMEC's CyberTipline
Reporting API (docs/cybertipline.md records which elements are used and where their values come
from). hashwatch.cybertip sends the same documents to the API; the shells export them.

Three documents come out of one report:

- `report_xml`: the `<report>` document, POSTed to the API's /submit;
- `file_details_xml`: one `<fileDetails>` document per file, POSTed to /fileinfo once the file is
  uploaded and has the report and file ids the API gave;
- `to_xml`: the export, hashwatch's own `<cybertiplineExport>` wrapper holding the `<report>` and
  every file's `<fileDetails>` (without the ids, which only a submission gets).

Nothing here reads or writes media; the report carries hashes, never bytes.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hashwatch.errors import Conflict, NotFound
from hashwatch.store.models import JobState, MatchEvent, ReviewJob

__all__ = [
    "FILE_ANNOTATIONS",
    "HASH_TYPES",
    "INCIDENT_TYPE",
    "REPORTER_ENV",
    "CyberTiplineReport",
    "ReportFile",
    "ReportedUser",
    "Reporter",
    "annotation_names",
    "build_report",
    "file_details_xml",
    "get_job",
    "get_report",
    "report_xml",
    "summary",
    "to_xml",
]

#: The incident type of every report hashwatch makes: known abuse imagery found on a platform.
INCIDENT_TYPE = "Child Pornography (possession, manufacture, and distribution)"

#: Binary hashes of the file as uploaded, as (signal type, the API's hashType).
HASH_TYPES = (("md5", "MD5"), ("sha1", "SHA1"), ("sha256", "SHA256"))

#: The API's file annotation tags, in its schema's order. A reviewer's annotation naming one
#: becomes that tag; any other annotation is written as text in the file's additionalInfo.
FILE_ANNOTATIONS = (
    "animeDrawingVirtualHentai",
    "potentialMeme",
    "viral",
    "possibleSelfProduction",
    "physicalHarm",
    "violenceGore",
    "bestiality",
    "liveStreaming",
    "infant",
    "generativeAi",
)
_ANNOTATION_TAGS = {tag.lower(): tag for tag in FILE_ANNOTATIONS}
#: What a reviewer may type for a tag: its letters in any case, with spaces, hyphens, slashes or
#: underscores anywhere ("Physical Harm", "violence/gore", "generative-AI").
_SEPARATORS = re.compile(r"[\s_/-]+")


def annotation_names() -> list[str]:
    """The file annotation tags as a reviewer would write them: "physical harm"."""
    return [re.sub(r"(?<=[a-z])(?=[A-Z])", " ", tag).lower() for tag in FILE_ANNOTATIONS]


#: Environment variables giving a server's or command's default reporter details.
REPORTER_ENV = {
    "contact_name": "HASHWATCH_REPORTER_NAME",
    "email": "HASHWATCH_REPORTER_EMAIL",
    "phone": "HASHWATCH_REPORTER_PHONE",
    "service": "HASHWATCH_REPORTER_SERVICE",
}

# XML 1.0 cannot carry most control characters at all, escaped or not: a user reference holding
# one would make the whole report unreadable, so they are dropped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Reporter:
    """Who reports: the platform (its organisation name and the ESP service it runs) and the
    person NCMEC and law enforcement contact about the report."""

    organisation: str
    contact_name: str = ""
    email: str = ""
    phone: str = ""
    #: The name of the platform's product or service the reported user used.
    service: str = ""

    @classmethod
    def from_env(cls, organisation: str, **overrides: str | None) -> Reporter:
        """The reporter for `organisation` from HASHWATCH_REPORTER_NAME, _EMAIL, _PHONE and
        _SERVICE, each replaced by an override that is given (not None)."""
        values = {name: os.environ.get(env, "") for name, env in REPORTER_ENV.items()}
        values.update({name: value for name, value in overrides.items() if value is not None})
        unknown = set(values) - set(REPORTER_ENV)
        if unknown:
            raise TypeError(f"unknown reporter fields: {', '.join(sorted(unknown))}")
        return cls(organisation=organisation, **{k: v.strip() for k, v in values.items()})


@dataclass(frozen=True)
class ReportedUser:
    """The platform's user whose uploads matched."""

    user_ref: str
    service: str
    #: Each distinct (IP address, upload time) the user's matched uploads came from.
    ip_events: tuple[tuple[str, datetime | None], ...]
    screen_names: tuple[str, ...] = ()
    display_names: tuple[str, ...] = ()
    profile_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportFile:
    """One matched upload (one match event)."""

    event_id: int
    content_id: str
    original_file_name: str
    location: str | None
    uploaded_at: datetime | None
    ip_address: str | None
    #: The content's own hashes by signal type (md5, sha1, sha256, pdq).
    hashes: dict[str, str]
    classification: str
    #: The API's annotation tags, and the reviewer's other annotations as text.
    annotation_tags: tuple[str, ...]
    notes: tuple[str, ...]
    viewed: bool
    #: What it matched, one line each ("list 'x' entry 3: pdq at distance 4, category A1").
    matched: tuple[str, ...]
    #: Whether its media is kept (encrypted), so that a submission can upload it.
    has_media: bool
    media_name: str | None = field(default=None, repr=False)
    media_type: str | None = None


@dataclass(frozen=True)
class CyberTiplineReport:
    job_id: int
    organisation_id: int
    incident_type: str
    incident_at: datetime
    reporter: Reporter
    user: ReportedUser
    files: tuple[ReportFile, ...]
    classification: str
    decided_at: datetime | None
    decided_by: str | None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


# --- building ----------------------------------------------------------------------------------


def get_job(session: Session, organisation_id: int, job_id: int) -> ReviewJob:
    """The organisation's review job `job_id`; NotFound for another organisation's."""
    job = session.get(ReviewJob, job_id)
    if job is None or job.organisation_id != organisation_id:
        raise NotFound(f"no review job {job_id}")
    return job


def get_report(
    session: Session, organisation_id: int, job_id: int, reporter: Reporter
) -> CyberTiplineReport:
    return build_report(session, get_job(session, organisation_id, job_id), reporter)


def build_report(session: Session, job: ReviewJob, reporter: Reporter) -> CyberTiplineReport:
    """The report of a CONFIRMED job (Conflict otherwise): one file per match event."""
    if job.state != JobState.CONFIRMED or job.classification is None:
        raise Conflict(
            f"review job {job.id} is {job.state.replace('_', ' ')}: only a confirmed job is "
            "reported to the CyberTipline"
        )
    events = list(
        session.scalars(
            select(MatchEvent)
            .where(MatchEvent.job_id == job.id)
            .order_by(MatchEvent.created_at, MatchEvent.id)
        )
    )
    if not events:
        raise Conflict(f"review job {job.id} has no match events left to report (purged?)")
    service = reporter.service or reporter.organisation
    tags, notes = _split_annotations(job.annotations)
    files = tuple(_file(event, job, tags, notes) for event in events)
    return CyberTiplineReport(
        job_id=job.id,
        organisation_id=job.organisation_id,
        incident_type=INCIDENT_TYPE,
        incident_at=events[0].uploaded_at or events[0].created_at,
        reporter=reporter,
        user=_user(job.user_ref, service, events),
        files=files,
        classification=job.classification,
        decided_at=job.decided_at,
        decided_by=job.decided_by,
    )


def _file(
    event: MatchEvent, job: ReviewJob, tags: tuple[str, ...], notes: tuple[str, ...]
) -> ReportFile:
    extra = event.extra or {}
    file_name = _text_field(extra, "file_name") or event.content_id
    return ReportFile(
        event_id=event.id,
        content_id=event.content_id,
        original_file_name=file_name,
        location=_text_field(extra, "url"),
        uploaded_at=event.uploaded_at,
        ip_address=event.ip_address,
        hashes={str(k): str(v) for k, v in (event.hashes or {}).items()},
        classification=job.classification or "",
        annotation_tags=tags,
        notes=notes,
        viewed=job.viewed,
        matched=tuple(_match_line(match) for match in event.matches or []),
        has_media=event.media_name is not None,
        media_name=event.media_name,
        media_type=event.media_type,
    )


def _user(user_ref: str, service: str, events: Sequence[MatchEvent]) -> ReportedUser:
    ip_events: list[tuple[str, datetime | None]] = []
    for event in events:
        if event.ip_address and (event.ip_address, event.uploaded_at) not in ip_events:
            ip_events.append((event.ip_address, event.uploaded_at))
    return ReportedUser(
        user_ref=user_ref,
        service=service,
        ip_events=tuple(ip_events),
        screen_names=_distinct(_text_field(e.extra or {}, "screen_name") for e in events),
        display_names=_distinct(_text_field(e.extra or {}, "display_name") for e in events),
        profile_urls=_distinct(_text_field(e.extra or {}, "profile_url") for e in events),
    )


def _split_annotations(annotations: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    tags: list[str] = []
    notes: list[str] = []
    for annotation in annotations or ():
        tag = _ANNOTATION_TAGS.get(_SEPARATORS.sub("", str(annotation)).lower())
        if tag is not None:
            if tag not in tags:
                tags.append(tag)
        elif str(annotation).strip():
            notes.append(str(annotation).strip())
    return tuple(sorted(tags, key=FILE_ANNOTATIONS.index)), tuple(notes)


def _match_line(match: dict[str, Any]) -> str:
    line = (
        f"list {match.get('list')!r} entry {match.get('entry_id')}: "
        f"{match.get('signal_type')} at distance {match.get('distance')}"
    )
    if match.get("category"):
        line += f", category {match['category']}"
    if match.get("variant"):
        line += f", variant {match['variant']}"
    return line


def _text_field(extra: dict[str, Any], name: str) -> str | None:
    value = extra.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _distinct(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


# --- XML -------------------------------------------------------------------------------------


def report_xml(report: CyberTiplineReport) -> bytes:
    """The `<report>` document for the API's /submit."""
    return _document(_report_element(report))


def file_details_xml(
    report: CyberTiplineReport,
    file: ReportFile,
    *,
    report_id: str | None = None,
    file_id: str | None = None,
) -> bytes:
    """The `<fileDetails>` document for the API's /fileinfo; `report_id` and `file_id` are the
    ids the API gave at submission and upload (left out of an export)."""
    return _document(_file_details_element(report, file, report_id, file_id))


def to_xml(report: CyberTiplineReport) -> bytes:
    """The export: the `<report>` and each file's `<fileDetails>`, in hashwatch's wrapper."""
    root = ET.Element(
        "cybertiplineExport",
        {
            "generator": "hashwatch",
            "job": str(report.job_id),
            "created": _when(report.created_at),
        },
    )
    root.append(_report_element(report))
    files = ET.SubElement(root, "files")
    for file in report.files:
        files.append(_file_details_element(report, file, None, None))
    return _document(root)


def _report_element(report: CyberTiplineReport) -> ET.Element:
    root = ET.Element("report")
    incident = _sub(root, "incidentSummary")
    _sub(incident, "incidentType", report.incident_type)
    _sub(incident, "incidentDateTime", _when(report.incident_at))
    _sub(
        incident,
        "incidentDateTimeDescription",
        "The upload time of the first matched file"
        if report.files[0].uploaded_at is not None
        else "When the first match was recorded (the platform gave no upload time)",
    )

    locations = _distinct(file.location for file in report.files)
    web = _sub(_sub(root, "internetDetails"), "webPageIncident")
    for url in locations:
        _sub(web, "url", url)
    _sub(
        web,
        "additionalInfo",
        f"Files uploaded to {report.user.service} matched verified hash lists of known child "
        "sexual abuse material.",
    )

    reporter = _sub(root, "reporter")
    person = _sub(reporter, "reportingPerson")
    first, last = _split_name(report.reporter.contact_name)
    if first:
        _sub(person, "firstName", first)
    if last:
        _sub(person, "lastName", last)
    if report.reporter.phone:
        _sub(person, "phone", report.reporter.phone)
    if report.reporter.email:
        _sub(person, "email", report.reporter.email)
    _sub(reporter, "companyTemplate", f"Reporting company: {report.reporter.organisation}.")

    user = _sub(root, "personOrUserReported")
    _sub(user, "espIdentifier", report.user.user_ref)
    _sub(user, "espService", report.user.service)
    for name in report.user.screen_names[:1]:
        _sub(user, "screenName", name)
    for name in report.user.display_names:
        _sub(user, "displayName", name)
    for url in report.user.profile_urls:
        _sub(user, "profileUrl", url)
    for address, when in report.user.ip_events:
        _ip_capture(user, address, when)

    _sub(root, "additionalInfo", _report_notes(report))
    return root


def _file_details_element(
    report: CyberTiplineReport, file: ReportFile, report_id: str | None, file_id: str | None
) -> ET.Element:
    root = ET.Element("fileDetails")
    if report_id is not None:
        _sub(root, "reportId", report_id)
    if file_id is not None:
        _sub(root, "fileId", file_id)
    _sub(root, "originalFileName", file.original_file_name)
    if file.uploaded_at is not None:
        _sub(root, "uploadedToEspTimestamp", _when(file.uploaded_at))
    if file.location:
        _sub(root, "locationOfFile", file.location)
    _sub(root, "fileViewedByEsp", "true" if file.viewed else "false")
    _sub(root, "fileRelevance", "Reported")
    if file.annotation_tags:
        annotations = _sub(root, "fileAnnotations")
        for tag in file.annotation_tags:
            _sub(annotations, tag, "true")
    _sub(root, "industryClassification", file.classification)
    for signal_type, hash_type in HASH_TYPES:
        value = file.hashes.get(signal_type)
        if value:
            _sub(root, "originalFileHash", value, hashType=hash_type)
    if file.ip_address:
        _ip_capture(root, file.ip_address, file.uploaded_at)
    perceptual = {k: v for k, v in file.hashes.items() if k not in dict(HASH_TYPES)}
    if perceptual:
        details = _sub(root, "details", type="HASH")
        for signal_type, value in sorted(perceptual.items()):
            pair = _sub(details, "nameValuePair")
            _sub(pair, "name", signal_type.upper())
            _sub(pair, "value", value)
    _sub(root, "additionalInfo", f"Platform content id: {file.content_id}")
    for line in file.matched:
        _sub(root, "additionalInfo", f"Matched {line}")
    for note in file.notes:
        _sub(root, "additionalInfo", f"Reviewer annotation: {note}")
    return root


def _report_notes(report: CyberTiplineReport) -> str:
    lines = [
        f"Found by hashwatch: {len(report.files)} file(s) uploaded by this user matched verified "
        "hash lists; a person reviewed and confirmed them "
        f"(industry classification {report.classification}).",
        f"hashwatch review job {report.job_id}.",
    ]
    without_media = [file for file in report.files if not file.has_media]
    if without_media:
        lines.append("The platform did not retain these files; their hashes as uploaded, and PDQ:")
        for file in without_media:
            hashes = ", ".join(f"{k.upper()} {v}" for k, v in sorted(file.hashes.items()))
            lines.append(f"- {file.original_file_name}: {hashes}")
    return "\n".join(lines)


def _ip_capture(parent: ET.Element, address: str, when: datetime | None) -> None:
    event = _sub(parent, "ipCaptureEvent")
    _sub(event, "ipAddress", address)
    _sub(event, "eventName", "Upload")
    if when is not None:
        _sub(event, "dateTime", _when(when))


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: _clean(v) for k, v in attributes.items()})
    if text is not None:
        element.text = _clean(text)
    return element


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def _document(root: ET.Element) -> bytes:
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def _when(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _split_name(name: str) -> tuple[str, str]:
    parts = name.strip().rsplit(" ", 1)
    if len(parts) == 2:
        return parts[0].strip(), parts[1].strip()
    return parts[0], ""


# --- text ------------------------------------------------------------------------------------


def summary(report: CyberTiplineReport) -> str:
    """The report for a person to read: what happened, who reports, who is reported, and every
    file with its hashes and what it matched."""
    reporter = report.reporter
    contact = ", ".join(p for p in (reporter.contact_name, reporter.email, reporter.phone) if p)
    lines = [
        f"CyberTipline report for review job {report.job_id}",
        f"Incident type:    {report.incident_type}",
        f"Incident time:    {_when(report.incident_at)}",
        f"Classification:   {report.classification} (industry scale)",
        f"Reviewed by:      {report.decided_by or 'unknown'}"
        + (f" at {_when(report.decided_at)}" if report.decided_at else ""),
        f"Reporter:         {reporter.organisation}" + (f" ({contact})" if contact else ""),
    ]
    if not reporter.email:
        lines.append("                  (no reporter email: the CyberTipline requires one)")
    lines += [
        f"Reported user:    {report.user.user_ref} on {report.user.service}",
        "IP addresses:     "
        + (", ".join(dict.fromkeys(a for a, _ in report.user.ip_events)) or "none recorded"),
        f"Files ({len(report.files)}):",
    ]
    for number, file in enumerate(report.files, 1):
        lines.append(f"  {number}. {file.original_file_name} (content id {file.content_id})")
        uploaded = _when(file.uploaded_at) if file.uploaded_at else "unknown"
        lines.append(f"     uploaded {uploaded} from {file.ip_address or 'unknown IP'}")
        viewed = "viewed by the reviewer" if file.viewed else "not viewed by the reviewer"
        lines.append(f"     classification {file.classification}, {viewed}")
        if not file.has_media:
            lines.append("     media not retained: only its hashes are reported")
        for signal_type, value in sorted(file.hashes.items()):
            lines.append(f"     {signal_type.upper():<7} {value}")
        for line in file.matched:
            lines.append(f"     matched {line}")
        if file.annotation_tags or file.notes:
            lines.append("     annotations: " + ", ".join((*file.annotation_tags, *file.notes)))
    return "\n".join(_clean(line) for line in lines) + "\n"
