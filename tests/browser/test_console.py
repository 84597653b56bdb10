"""The assessment workflow end to end in headless chromium: intake through the upload form, two
analysts grading one image independently with keyboard shortcuts, publication to the change
feed, a disagreement settled by a senior analyst, and what the console refuses (another
organisation's items, a form without its CSRF token, an expired session, a missing role).

Every image is benign: scikit-image's sample photographs.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt
import pytest
import skimage.data
from playwright.sync_api import Page, expect
from sqlalchemy import update

from hashwatch import lists
from hashwatch.store.models import ConsoleSession, HashList, ItemState, utcnow
from tests.browser.conftest import Console
from tests.imaging import encode

IMAGE = "#item-image"
FILTER = "getComputedStyle(document.querySelector('#item-image')).filter"


def photo(pixels: npt.NDArray[np.uint8]) -> bytes:
    return encode(pixels, "PNG")


def image_filter(page: Page) -> str:
    value = page.evaluate(FILTER)
    assert isinstance(value, str)
    return value


def assert_veiled(page: Page) -> None:
    """The image has loaded (through the media route, under the page's CSP) and is veiled."""
    image = page.locator(IMAGE)
    expect(image).to_have_class(re.compile(r"\bveiled\b"))
    page.wait_for_function("document.querySelector('#item-image').naturalWidth > 0")
    shown = image_filter(page)
    assert "blur(24px)" in shown and "grayscale(1)" in shown, shown


def test_two_analysts_publish_an_image(console: Console) -> None:
    list_id = console.organisation_list()
    for username, role in (("alice", "analyst"), ("bob", "analyst"), ("sam", "senior")):
        console.add_person(username, role)

    # Intake through the upload form.
    alice = console.sign_in("alice", with_form=True)
    alice.get_by_role("link", name="Intake").click()
    alice.get_by_label("List").select_option(str(list_id))
    alice.get_by_label("Images").set_input_files(
        [{"name": "cat.png", "mimeType": "image/png", "buffer": photo(skimage.data.chelsea())}]
    )
    alice.get_by_label("Source").fill("report 17")
    alice.get_by_role("button", name="Take in").click()
    expect(alice.locator("#intake-results")).to_contain_text("queued for grading")
    (item,) = console.items()
    assert item.state == ItemState.QUEUED
    assert len(console.media_files()) == 1

    # The first analyst: the queue, the veiled image, reveal with r, grade with keys.
    alice.get_by_role("link", name="Queue").click()
    expect(alice.locator("#waiting-count")).to_have_text("1")
    console.screenshot(alice, "console-queue.png")
    alice.keyboard.press("s")
    alice.wait_for_url(re.compile(rf"/console/items/{item.id}$"))
    assert_veiled(alice)
    console.screenshot(alice, "console-item.png")
    alice.keyboard.press("r")
    assert image_filter(alice) == "none"
    expect(alice.locator("#reveal")).to_have_attribute("aria-pressed", "true")
    alice.keyboard.press("r")
    assert "blur" in image_filter(alice), "r veils it again"
    alice.keyboard.press("Shift+3")
    expect(alice.get_by_label("Age band of the youngest child shown")).to_have_value("7-10")
    alice.keyboard.press("2")  # category B
    alice.wait_for_url(re.compile(rf"/console\?graded={item.id}$"))
    expect(alice.locator("#queue-empty")).to_be_visible()
    assert console.item(item.id).state == ItemState.QUEUED, "one grade of two"

    # The second analyst sees nothing of the first's grade, and agrees.
    bob = console.sign_in("bob", with_form=True)
    expect(bob.locator("#waiting-count")).to_have_text("1")
    bob.get_by_role("link", name=f"Item {item.id}").click()
    assert_veiled(bob)
    expect(bob.locator("#grades")).to_have_count(0)
    expect(bob.locator("#own-grade")).to_have_count(0)
    expect(bob.locator("main")).not_to_contain_text("alice")
    bob.keyboard.press("Shift+3")
    bob.keyboard.press("2")
    bob.wait_for_url(re.compile(rf"/console\?graded={item.id}$"))

    # Published: on the list's change feed, and the image is gone for good.
    decided = console.item(item.id)
    assert decided.state == ItemState.PUBLISHED
    assert decided.grade == "B" and decided.age_band == "7-10"
    with console.store.session() as session:
        hash_list = session.get(HashList, list_id)
        assert hash_list is not None
        feed = lists.changes(session, hash_list)
    assert sorted(change.entry_id for change in feed) == sorted(decided.entry_ids)
    assert {change.signal_type for change in feed} >= {"md5", "sha1", "sha256", "pdq"}
    assert all(c.category == "B" and "age:7-10" in c.labels for c in feed)
    assert console.media_files() == []

    bob.get_by_role("link", name="Published").click()
    expect(bob.locator("#published")).to_contain_text(f"Item {item.id}")
    bob.get_by_role("link", name="Dashboard").click()
    expect(bob.locator("#agreement")).to_have_text("100%")
    console.screenshot(bob, "console-dashboard.png")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_disagreement_goes_to_a_senior_analyst(console: Console) -> None:
    list_id = console.organisation_list()
    for username, role in (("alice", "analyst"), ("bob", "analyst"), ("sam", "senior")):
        console.add_person(username, role)
    item_id = console.take_in(list_id, photo(skimage.data.coffee()))

    for username, key in (("alice", "1"), ("bob", "3")):  # category A, category C
        page = console.sign_in(username)
        page.goto(f"{console.url}/console/items/{item_id}")
        page.keyboard.press(key)
        page.wait_for_url(re.compile(r"/console\?graded="))
    assert console.item(item_id).state == ItemState.ESCALATED

    # The analyst who graded it sees neither the other grade nor a form, nor the image.
    alice = console.sign_in("alice")
    alice.goto(f"{console.url}/console/items/{item_id}")
    expect(alice.locator("main")).to_contain_text("a senior analyst decides")
    expect(alice.locator("#grades")).to_have_count(0)
    expect(alice.locator(IMAGE)).to_have_count(0)

    sam = console.sign_in("sam")
    expect(sam.locator("#waiting-count")).to_have_text("1")
    sam.get_by_role("link", name=f"Item {item_id}").click()
    assert_veiled(sam)
    grades = sam.locator("#grades")
    expect(grades).to_contain_text("alice")
    expect(grades).to_contain_text("Category A")
    expect(grades).to_contain_text("bob")
    expect(grades).to_contain_text("Category C")
    console.screenshot(sam, "console-escalated.png")
    sam.keyboard.press("Shift+2")  # 3-6
    sam.keyboard.press("1")  # category A: final
    sam.wait_for_url(re.compile(rf"/console\?decided={item_id}$"))
    decided = console.item(item_id)
    assert decided.state == ItemState.PUBLISHED
    assert (decided.grade, decided.age_band) == ("A", "3-6")
    assert console.media_files() == []


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_another_organisation_sees_nothing(console: Console) -> None:
    list_id = console.organisation_list()
    console.organisation_list("elsewhere", "theirs")
    console.add_person("alice")
    console.add_person("mallory", "admin", org="elsewhere")
    item_id = console.take_in(list_id, photo(skimage.data.astronaut()))

    mallory = console.sign_in("mallory")
    expect(mallory.locator("#queue-empty")).to_be_visible()
    expect(mallory.locator("#waiting-count")).to_have_text("0")
    for path in (f"/console/items/{item_id}", f"/console/items/{item_id}/media"):
        response = mallory.goto(f"{console.url}{path}")
        assert response is not None and response.status == 404, path
    mallory.goto(f"{console.url}/console/people")
    expect(mallory.locator("#people")).not_to_contain_text("alice")

    alice = console.sign_in("alice")
    expect(alice.locator("#waiting-count")).to_have_text("1")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_forms_need_their_token_and_sessions_expire(console: Console) -> None:
    list_id = console.organisation_list()
    console.add_person("alice")
    item_id = console.take_in(list_id, photo(skimage.data.rocket()))
    alice = console.sign_in("alice")
    alice.goto(f"{console.url}/console/items/{item_id}")

    # A forged form: the grade form without its token.
    alice.evaluate("document.querySelector('#grade-form input[name=csrf]').remove()")
    alice.keyboard.press("1")
    expect(alice.locator("h1")).to_have_text("Form expired")
    # And a script's request without the header.
    status = alice.evaluate(
        f"fetch('/console/items/{item_id}/grade', "
        "{method: 'POST', body: new URLSearchParams({grade: 'A'})})"
        ".then(response => response.status)"
    )
    assert status == 403
    assert console.item(item_id).state == ItemState.QUEUED

    # The session ends on the server: the next page goes back to sign in.
    with console.store.session() as session:
        session.execute(update(ConsoleSession).values(expires_at=utcnow()))
    alice.goto(f"{console.url}/console/items/{item_id}")
    assert alice.url == f"{console.url}/console/login"
    expect(alice.get_by_role("button", name="Sign in")).to_be_visible()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_an_analyst_neither_manages_people_nor_decides(console: Console) -> None:
    list_id = console.organisation_list()
    for username, role in (("alice", "analyst"), ("bob", "analyst"), ("carol", "analyst")):
        console.add_person(username, role)
    console.add_person("root", "admin")
    item_id = console.take_in(list_id, photo(skimage.data.immunohistochemistry()))
    for username, key in (("alice", "1"), ("bob", "n")):
        page = console.sign_in(username)
        page.goto(f"{console.url}/console/items/{item_id}")
        page.keyboard.press(key)
        page.wait_for_url(re.compile(r"/console\?graded="))

    carol = console.sign_in("carol")
    expect(carol.get_by_role("link", name="People")).to_have_count(0)
    response = carol.goto(f"{console.url}/console/people")
    assert response is not None and response.status == 403
    carol.goto(f"{console.url}/console/items/{item_id}")
    expect(carol.locator("#grade-form")).to_have_count(0)
    expect(carol.locator("#grades")).to_have_count(0)
    token = carol.locator("header input[name=csrf]").get_attribute("value")
    status = carol.evaluate(
        f"token => fetch('/console/items/{item_id}/decision', {{method: 'POST', headers: "
        "{'X-CSRF-Token': token}, body: new URLSearchParams({grade: 'A'})})"
        ".then(response => response.status)",
        token,
    )
    assert status == 403
    assert console.item(item_id).state == ItemState.ESCALATED

    # An administrator adds a person through the people page.
    root = console.sign_in("root")
    root.get_by_role("link", name="People").click()
    root.get_by_label("User name").fill("dave")
    root.get_by_label("Password").fill("another long password")
    root.get_by_label("Role").select_option("senior")
    root.get_by_role("button", name="Add").click()
    expect(root.locator(".notice")).to_have_text("dave can now sign in.")
    expect(root.locator("#people")).to_contain_text("Senior analyst")
