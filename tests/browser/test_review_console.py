"""The platform's side end to end in headless chromium: uploads matched over the HTTP API become
match events, one review job per platform user; a reviewer confirms one job with the keyboard
in the console and its CyberTipline report appears, and marks another a false positive, after
which the same content no longer alerts and the list's owner sees a dispute.

Every image is benign: scikit-image's sample photographs.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from typing import Any

import httpx2
import numpy as np
import numpy.typing as npt
import pytest
import skimage.data
from playwright.sync_api import Page, expect

from hashwatch import keys, lists, organisations, review, sharing
from hashwatch.hashing import hash_bytes
from hashwatch.media import MediaLimits
from hashwatch.store.models import JobState, Organisation, ReviewJob
from tests.browser.conftest import Console
from tests.imaging import encode
from tests.test_reports import check_file, check_report

VEILED = (
    "Array.from(document.querySelectorAll('img[data-veil]')).map(i => getComputedStyle(i).filter)"
)


def jpeg(pixels: npt.NDArray[np.uint8], quality: int = 80) -> bytes:
    return encode(pixels, "JPEG", quality=quality)


class World:
    """A hotline's list shared with a platform, and both organisations' API keys."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.photos = {
            "cat": skimage.data.chelsea(),
            "coffee": skimage.data.coffee(),
            "astronaut": skimage.data.astronaut(),
        }
        categories = {"cat": "A1", "coffee": "B2", "astronaut": "B2"}
        self.pdq: dict[str, str] = {}
        with console.store.session() as session:
            hotline = organisations.get_or_create_organisation(session, "hotline")
            platform = organisations.get_or_create_organisation(session, "platform")
            hash_list = lists.create_list(session, hotline, "verified", "test")
            entries = []
            for name, pixels in self.photos.items():
                hashes = hash_bytes(encode(pixels, "PNG"), MediaLimits()).hashes
                self.pdq[name] = hashes["pdq"]
                for kind in ("pdq", "md5"):
                    entries.append(
                        lists.make_entry(
                            signal_type=kind,
                            value=hashes[kind],
                            category=categories[name],
                            source=f"hotline report {name}",
                        )
                    )
            lists.add_entries(session, hash_list, entries, "test")
            sharing.grant(session, hash_list, platform, "match", "test")
            review.configure_evidence(session, platform, "test", retain_evidence=True)
            self.list_id = hash_list.id
            self.platform_key = keys.create_key(
                session, platform, ["match", "review"], "test"
            ).secret
            self.hotline_key = keys.create_key(session, hotline, ["lists:read"], "test").secret
        console.add_person("rita", "analyst", org="platform")

    def upload(self, name: str, content_id: str, user_id: str) -> dict[str, Any]:
        """A platform's upload matched over HTTP, with its content reference."""
        answer = httpx2.post(
            f"{self.console.url}/v1/match",
            headers={"Authorization": f"Bearer {self.platform_key}"},
            files={"file": (f"{content_id}.jpg", jpeg(self.photos[name]), "image/jpeg")},
            data={
                "content_id": content_id,
                "user_id": user_id,
                "ip_address": "192.0.2.7",
                "uploaded_at": "2026-11-21T09:30:00Z",
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def upload_when_matched(self, name: str, content_id: str, user_id: str) -> dict[str, Any]:
        """The first upload waits for the server's indexes to take in the new list."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            body = self.upload(name, content_id, user_id)
            if body["matches"]:
                return body
            time.sleep(0.1)
        raise AssertionError("the list never became matchable")

    def jobs(self) -> list[ReviewJob]:
        with self.console.store.session() as session:
            organisation = session.query(Organisation).filter_by(name="platform").one()
            return list(
                session.query(ReviewJob)
                .filter_by(organisation_id=organisation.id)
                .order_by(ReviewJob.id)
            )


def veil_filters(page: Page) -> list[str]:
    page.wait_for_function(
        "Array.from(document.querySelectorAll('img[data-veil]')).every(i => i.naturalWidth > 0)"
    )
    found = page.evaluate(VEILED)
    assert isinstance(found, list)
    return [str(value) for value in found]


def test_a_reviewer_confirms_a_job_and_its_report_appears(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reporter's contact, from the server's settings (the server runs in this process).
    monkeypatch.setenv("HASHWATCH_REPORTER_NAME", "Ada Lovelace")
    monkeypatch.setenv("HASHWATCH_REPORTER_EMAIL", "safety@platform.example")
    world = World(console)
    # Two uploads of one user (an A1 and a B2 entry) and one of another user.
    first = world.upload_when_matched("cat", "c-1", "user-42")
    second = world.upload("coffee", "c-2", "user-42")
    other = world.upload("astronaut", "c-3", "user-7")
    assert first["event_id"] and second["event_id"] and other["event_id"]
    jobs = world.jobs()
    assert [job.user_ref for job in jobs] == ["user-42", "user-7"], "one job per user"
    heavy, light = jobs

    rita = console.sign_in("rita")
    rita.get_by_role("link", name="Reviews").click()
    expect(rita.locator("#open-count")).to_have_text("2")
    rows = rita.locator("#review-jobs tbody tr")
    expect(rows.nth(0)).to_contain_text("user-42")  # the A1 job first
    expect(rows.nth(0)).to_contain_text("A1")
    expect(rows.nth(1)).to_contain_text("user-7")
    console.screenshot(rita, "console-reviews.png")

    # The job: both uploads, why each matched, the images veiled until revealed.
    rita.keyboard.press("s")
    rita.wait_for_url(re.compile(rf"/console/reviews/{heavy.id}$"))
    expect(rita.locator("article.event")).to_have_count(2)
    expect(rita.locator("#event-" + str(first["event_id"]))).to_contain_text("verified")
    expect(rita.locator("#event-" + str(first["event_id"]))).to_contain_text("hotline report cat")
    filters = veil_filters(rita)
    assert len(filters) == 2 and all("blur(24px)" in f and "grayscale(1)" in f for f in filters)
    console.screenshot(rita, "console-review.png")
    expect(rita.get_by_label("Someone here viewed the content")).not_to_be_checked()
    rita.keyboard.press("r")
    assert veil_filters(rita) == ["none", "none"]
    expect(rita.get_by_label("Someone here viewed the content")).to_be_checked()
    rita.get_by_label("Annotations").fill("Infant, Physical Harm")
    rita.keyboard.press("Escape")
    rita.keyboard.press("2")  # confirm as A2

    # On to the next job, with a link to the report of the one just confirmed.
    rita.wait_for_url(re.compile(rf"/console/reviews/{light.id}\?confirmed={heavy.id}$"))
    [decided, _] = world.jobs()
    assert decided.state == JobState.CONFIRMED and decided.classification == "A2"
    assert decided.viewed and decided.decided_by == "rita"
    assert decided.annotations == ["Infant", "Physical Harm"]
    rita.get_by_role("link", name=f"Job {heavy.id}'s report").click()
    report = rita.locator("#report")
    expect(report).to_contain_text("CyberTipline")
    for upload in ("c-1", "c-2"):
        expect(report).to_contain_text(upload)
    expect(rita.locator("article.event img")).to_have_count(0)  # decided: no images shown
    console.screenshot(rita, "console-report.png")

    # The XML: the documented structure, and every file with all its hashes.
    xml = rita.request.get(f"{console.url}/console/reviews/{heavy.id}/report.xml")
    assert xml.status == 200 and xml.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(xml.body())
    check_report(root[0])
    with console.store.session() as session:
        job = session.get(ReviewJob, heavy.id)
        assert job is not None
        hashes = [event.hashes for event in review.job_events(session, job)]
    files = root.findall("files/fileDetails")
    assert len(files) == 2
    for file, own in zip(files, hashes, strict=True):
        check_file(file, own, "A2", viewed=True)
        tags = file.find("fileAnnotations")
        assert tags is not None and [tag.tag for tag in tags] == ["physicalHarm", "infant"]


def test_a_false_positive_never_alerts_again_and_reaches_the_owner(console: Console) -> None:
    world = World(console)
    assert world.upload_when_matched("astronaut", "c-9", "user-9")["event_id"]
    [job] = world.jobs()
    rita = console.sign_in("rita")
    rita.goto(f"{console.url}/console/reviews/{job.id}")
    rita.get_by_label("Note for the lists' owners").fill("a benign photograph")
    rita.keyboard.press("Escape")
    rita.keyboard.press("f")
    rita.wait_for_url(re.compile(rf"/console/reviews\?rejected={job.id}$"))
    expect(rita.locator(".notice")).to_contain_text("false positive")
    expect(rita.locator("#reviews-empty")).to_be_visible()
    expect(rita.locator("#decided-jobs")).to_contain_text("false positive")
    assert world.jobs()[0].state == JobState.FALSE_POSITIVE

    # The same picture, re-encoded, matches the list but no longer opens a job.
    again = world.upload("astronaut", "c-10", "user-9")
    assert again["matches"] and again["event_id"] is None
    assert len(world.jobs()) == 1

    disputes = httpx2.get(
        f"{console.url}/v1/lists/{world.list_id}/disputes",
        headers={"Authorization": f"Bearer {world.hotline_key}"},
    ).json()["disputes"]
    # The re-encoded upload matched the astronaut's PDQ entry (its MD5 is the original's).
    assert [(d["signal_type"], d["value"], d["disputes"]) for d in disputes] == [
        ("pdq", world.pdq["astronaut"], 1)
    ]
