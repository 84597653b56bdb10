"""Hashing and matching over HTTP: uploads and hash batches, explained matches, sharing,
limits, the match log, and changes from another process becoming matchable in time."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import skimage.data
from sqlalchemy import select
from typer.testing import CliRunner

from hashwatch.cli import app as cli
from hashwatch.hashing import hash_bytes
from hashwatch.media import MediaLimits
from hashwatch.store.models import AuditEvent
from hashwatch.variants import DIHEDRAL
from tests.api.conftest import Service, flip_bits, random_pdq
from tests.imaging import encode

MD5 = "0123456789abcdef0123456789abcdef"


def _match(service: Service, org: str, hashes: list[dict[str, Any]], **extra: Any) -> Any:
    return service.post("/v1/match", org, json={"hashes": hashes, **extra})


def test_a_hash_batch_matches_with_every_explanation(service: Service) -> None:
    listed = random_pdq()
    list_id = service.make_list(
        "hotline",
        "verified",
        [
            {
                "signal_type": "pdq",
                "value": listed,
                "category": "A",
                "labels": ["x"],
                "source": "s1",
            },
            {"signal_type": "md5", "value": MD5, "category": "B1"},
        ],
    )
    response = _match(
        service,
        "hotline",
        [
            {"signal_type": "pdq", "value": flip_bits(listed, 7)},
            {"signal_type": "md5", "value": MD5.upper()},
            {"signal_type": "pdq", "value": random_pdq()},
            {"signal_type": "pdq", "value": flip_bits(listed, 40)},
        ],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["matched_items"] == 2
    first, second, third, fourth = body["results"]
    assert [r["item"] for r in body["results"]] == [0, 1, 2, 3]
    (hit,) = first["matches"]
    assert hit == {
        "list": "verified",
        "list_id": list_id,
        "entry_id": hit["entry_id"],
        "signal_type": "pdq",
        "value": listed,
        "distance": 7,
        "category": "A",
        "labels": ["x"],
        "source": "s1",
        "variant": "original",
        "entry_variant": "original",
    }
    assert second["matches"][0]["category"] == "B1"
    assert second["matches"][0]["distance"] == 0
    assert third["matches"] == [] and fourth["matches"] == []


def test_an_uploaded_image_is_hashed_and_matched(service: Service, photos: dict[str, Any]) -> None:
    image = encode(photos["coffee"], "JPEG", quality=90)
    reference = hash_bytes(image, MediaLimits())
    service.make_list(
        "hotline", "verified", [{"signal_type": "pdq", "value": reference.hashes["pdq"]}]
    )
    hashed = service.post("/v1/hash", "hotline", files={"file": ("c.jpg", image, "image/jpeg")})
    assert hashed.status_code == 200, hashed.text
    assert hashed.json()["hashes"] == reference.hashes
    assert hashed.json()["quality"] == reference.quality
    smaller = encode(photos["coffee"][::2, ::2], "JPEG", quality=70)  # altered, not identical
    matched = service.post("/v1/match", "hotline", files={"file": ("c.jpg", smaller, "image/jpeg")})
    assert matched.status_code == 200, matched.text
    (hit,) = matched.json()["matches"]
    assert hit["list"] == "verified" and 0 < hit["distance"] <= 31


def test_a_file_that_is_not_an_image_still_matches_by_exact_hash(service: Service) -> None:
    data = b"not an image at all, but listed by its MD5"
    media = hash_bytes(data, MediaLimits())
    service.make_list("hotline", "verified", [{"signal_type": "md5", "value": media.hashes["md5"]}])
    response = service.post("/v1/match", "hotline", files={"file": ("x.bin", data, "text/plain")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [m["signal_type"] for m in body["matches"]] == ["md5"]
    assert "pdq" not in body["hashes"] and body["error"]


def test_matching_sees_only_owned_and_granted_lists(service: Service) -> None:
    value = random_pdq()
    theirs = service.make_list("other", "private", [{"signal_type": "pdq", "value": value}])
    shared = service.make_list("partner", "shared", [{"signal_type": "pdq", "value": value}])
    service.grant(shared, "platform", "match")
    response = _match(service, "platform", [{"signal_type": "pdq", "value": value}])
    assert [m["list_id"] for m in response.json()["results"][0]["matches"]] == [shared]
    # Naming another organisation's list is answered like a list that does not exist.
    hidden = _match(service, "platform", [{"signal_type": "pdq", "value": value}], lists=[theirs])
    missing = _match(service, "platform", [{"signal_type": "pdq", "value": value}], lists=[10**9])
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"].replace(str(theirs), "N") == missing.json()["error"][
        "message"
    ].replace(str(10**9), "N")


def test_bad_hashes_are_named_by_item_and_nothing_is_matched(service: Service) -> None:
    response = _match(
        service,
        "platform",
        [
            {"signal_type": "pdq", "value": random_pdq()},
            {"signal_type": "pdq", "value": "abc"},
            {"signal_type": "nope", "value": MD5},
        ],
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "rejected"
    assert [d["item"] for d in error["details"]] == [1, 2]


def test_limits_answer_413_and_429(make_service: Any) -> None:
    service = make_service(max_batch=3, max_upload_bytes=1000, rate_limit=2)
    hashes = [{"signal_type": "md5", "value": MD5}] * 4
    too_many = _match(service, "platform", hashes)
    assert too_many.status_code == 413
    assert "limit is 3" in too_many.json()["error"]["message"]
    big = service.post(
        "/v1/hash", "platform", files={"file": ("big.png", b"\x89PNG" + b"0" * 5000, "image/png")}
    )
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "too_large"
    # Two per second with bursts of four: the fifth request in a row is refused, with a time.
    statuses = [_match(service, "platform", hashes[:1]).status_code for _ in range(6)]
    assert 429 in statuses
    refused = _match(service, "platform", hashes[:1])
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1


def test_every_match_request_is_logged_without_unmatched_hashes(service: Service) -> None:
    listed, unlisted = random_pdq(), random_pdq()
    service.make_list("hotline", "verified", [{"signal_type": "pdq", "value": listed}])
    response = _match(
        service,
        "hotline",
        [{"signal_type": "pdq", "value": listed}, {"signal_type": "pdq", "value": unlisted}],
    )
    assert response.status_code == 200
    service.state.match_log.flush()
    with service.store.session() as session:
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "match"))
    assert event.detail["items"] == 2 and event.detail["matched_items"] == 1
    assert event.detail["key_id"] in event.actor
    assert [m["item"] for m in event.detail["matches"]] == [0]
    assert unlisted not in str(event.detail)


def test_unmatched_hashes_are_logged_only_when_the_operator_asks(make_service: Any) -> None:
    service = make_service(log_unmatched=True)
    unlisted = random_pdq()
    _match(service, "platform", [{"signal_type": "pdq", "value": unlisted}])
    service.state.match_log.flush()
    with service.store.session() as session:
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "match"))
    assert event.detail["unmatched"][0]["value"] == unlisted


def test_a_change_from_the_cli_is_matched_within_the_delay(
    make_service: Any, store_url: str, tmp_path: Any
) -> None:
    service = make_service(max_staleness=1.0)
    service.make_list("local", "verified")
    value = random_pdq()
    csv = tmp_path / "more.csv"
    csv.write_text(f"signal_type,value\npdq,{value}\n")
    before = _match(service, "local", [{"signal_type": "pdq", "value": value}])
    assert before.json()["results"][0]["matches"] == []
    result = CliRunner().invoke(
        cli, ["lists", "import", "verified", str(csv), "--db", store_url, "--org", "local"]
    )
    assert result.exit_code == 0, result.output
    committed = time.monotonic()
    while True:
        found = _match(service, "local", [{"signal_type": "pdq", "value": value}])
        if found.json()["results"][0]["matches"]:
            break
        assert time.monotonic() - committed < 1.0 + 0.5, "not matched within the delay"
        time.sleep(0.05)
    ready = service.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["staleness_seconds"] <= 1.0


def test_health_needs_no_key_and_readiness_reports_staleness(make_service: Any) -> None:
    service = make_service(max_staleness=0.2)
    assert service.client.get("/healthz").json() == {"status": "ok"}
    body = service.client.get("/readyz").json()
    assert set(body) >= {"ready", "loaded", "entries", "staleness_seconds"}
    service.state.stop()  # no more refreshes: the indexes grow stale
    time.sleep(0.3)
    assert service.client.get("/readyz").status_code == 503


def test_never_a_stack_trace(service: Service) -> None:
    garbage = service.client.post(
        "/v1/match",
        content=b"{not json",
        headers={**service.headers("platform"), "Content-Type": "application/json"},
    )
    assert garbage.status_code == 422
    assert "Traceback" not in garbage.text
    assert set(garbage.json()) == {"error"}
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    truncated = encode(image, "PNG")[:30]
    response = service.post(
        "/v1/hash", "platform", files={"file": ("t.png", truncated, "image/png")}
    )
    assert response.status_code in (200, 415, 422)
    assert "Traceback" not in response.text


def test_a_turned_upload_matches_through_its_variant_unless_told_not_to(
    service: Service, photos: dict[str, Any]
) -> None:
    reference = hash_bytes(encode(photos["coffee"], "PNG"), MediaLimits())
    list_id = service.make_list(
        "hotline", "verified", [{"signal_type": "pdq", "value": reference.hashes["pdq"]}]
    )
    mirrored = encode(np.ascontiguousarray(photos["coffee"][:, ::-1]), "JPEG", quality=90)
    upload = {"file": ("m.jpg", mirrored, "image/jpeg")}
    matched = service.post("/v1/match", "hotline", files=upload)
    assert matched.status_code == 200, matched.text
    (hit,) = matched.json()["matches"]
    assert (hit["list_id"], hit["variant"]) == (list_id, "flip-horizontal")
    plain = service.post("/v1/match", "hotline", files=upload, data={"variants": "none"})
    assert plain.status_code == 200 and plain.json()["matches"] == []
    bad = service.post("/v1/match", "hotline", files=upload, data={"variants": "sideways"})
    assert bad.status_code == 400 and "sideways" in bad.json()["error"]["message"]
    # The list's owner turns variants off for the list: the mirrored copy no longer matches.
    patched = service.client.patch(
        f"/v1/lists/{list_id}", json={"variants": []}, headers=service.headers("hotline")
    )
    assert patched.status_code == 200 and patched.json()["variants"] == []
    service.refresh()
    assert service.post("/v1/match", "hotline", files=upload).json()["matches"] == []


def test_hashing_an_upload_can_return_its_variants(
    service: Service, photos: dict[str, Any]
) -> None:
    image = encode(photos["coffee"], "JPEG", quality=90)
    upload = {"file": ("c.jpg", image, "image/jpeg")}
    plain = service.post("/v1/hash", "hotline", files=upload).json()
    assert plain["variants"] == {}
    both = service.post("/v1/hash", "hotline", files=upload, data={"variants": "dihedral"}).json()
    names = [v["variant"] for v in both["variants"]["pdq"]]
    assert names == list(DIHEDRAL[1:])  # the seven others, in their fixed order
    assert both["hashes"] == plain["hashes"]


def test_the_service_hashes_rotations_exactly(make_service: Any) -> None:
    # Fine texture, where pdqhash.compute_dihedral's variants are about 40 bits off.
    brick = np.dstack([skimage.data.brick()] * 3)
    turned = encode(np.ascontiguousarray(np.rot90(brick, -1)), "PNG")
    service = make_service()
    listed = service.post("/v1/hash", "hotline", files={"file": ("b.png", encode(brick, "PNG"))})
    value = listed.json()["hashes"]["pdq"]
    service.make_list("hotline", "walls", [{"signal_type": "pdq", "value": value}])
    service.refresh()
    found = service.post("/v1/match", "hotline", files={"file": ("t.png", turned)}).json()
    assert [(m["variant"], m["distance"]) for m in found["matches"]] == [("rotate-90", 0)]
