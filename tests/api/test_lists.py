"""Lists over HTTP: create, show, change, delete; bulk add with the import's atomicity; revoke;
the change feed with its cursor; streamed exports; grants."""

from __future__ import annotations

import json

from tests.api.conftest import Service, flip_bits, random_pdq

MD5 = "0123456789abcdef0123456789abcdef"


def test_create_show_update_and_delete_a_list(service: Service) -> None:
    created = service.post(
        "/v1/lists", "hotline", json={"name": "verified", "thresholds": {"pdq": 40}}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "verified" and body["owner"] == "hotline" and body["access"] == "owner"
    assert body["thresholds"]["pdq"] == 40
    assert body["required_grades"] == 2
    list_id = body["id"]
    again = service.post("/v1/lists", "hotline", json={"name": "verified"})
    assert again.status_code == 409
    bad = service.post("/v1/lists", "hotline", json={"name": "x", "thresholds": {"pdq": 999}})
    assert bad.status_code == 400
    patched = service.client.patch(
        f"/v1/lists/{list_id}",
        headers=service.headers("hotline"),
        json={"description": "graded", "thresholds": {"pdq": 20}, "required_grades": 3},
    )
    assert patched.status_code == 200
    assert patched.json()["description"] == "graded"
    assert patched.json()["required_grades"] == 3
    assert patched.json()["thresholds"]["pdq"] == 20
    listed = service.get("/v1/lists", "hotline").json()["lists"]
    assert [item["id"] for item in listed] == [list_id]
    deleted = service.client.delete(f"/v1/lists/{list_id}", headers=service.headers("hotline"))
    assert deleted.status_code == 204
    assert service.get(f"/v1/lists/{list_id}", "hotline").status_code == 404


def test_bulk_add_is_atomic_and_names_bad_items(service: Service) -> None:
    list_id = service.make_list("hotline", "verified")
    good = {"signal_type": "pdq", "value": random_pdq(), "category": "A", "labels": ["a", "b"]}
    response = service.post(
        f"/v1/lists/{list_id}/entries",
        "hotline",
        json={
            "entries": [
                good,
                {"signal_type": "md5", "value": "xyz"},
                {"signal_type": "md5", "value": MD5, "category": "Z"},
            ]
        },
    )
    assert response.status_code == 422
    assert [d["item"] for d in response.json()["error"]["details"]] == [1, 2]
    assert service.get(f"/v1/lists/{list_id}", "hotline").json()["entries"] == 0
    ok = service.post(f"/v1/lists/{list_id}/entries", "hotline", json={"entries": [good, good]})
    assert ok.status_code == 200
    assert ok.json()["added"] == 1 and ok.json()["already_present"] == 1


def test_revoke_feed_and_cursor_paging(service: Service) -> None:
    values = [random_pdq() for _ in range(5)]
    list_id = service.make_list(
        "hotline", "verified", [{"signal_type": "pdq", "value": v} for v in values]
    )
    page = service.get(f"/v1/lists/{list_id}/changes?after=0&limit=2", "hotline").json()
    assert [c["seq"] for c in page["changes"]] == [1, 2]
    assert page["next_after"] == 2 and page["more"] is True and page["last_seq"] == 5
    entry_id = page["changes"][0]["entry_id"]
    revoked = service.client.delete(
        f"/v1/lists/{list_id}/entries/{entry_id}?reason=false%20positive",
        headers=service.headers("hotline"),
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["seq"] == 6
    again = service.client.delete(
        f"/v1/lists/{list_id}/entries/{entry_id}?reason=again", headers=service.headers("hotline")
    )
    assert again.status_code == 409
    seen: list[dict[str, object]] = []
    after = 0
    while True:
        page = service.get(f"/v1/lists/{list_id}/changes?after={after}&limit=2", "hotline").json()
        seen.extend(page["changes"])
        after = page["next_after"]
        if not page["more"]:
            break
    assert [c["seq"] for c in seen] == [1, 2, 3, 4, 5, 6]
    assert seen[-1]["kind"] == "revoke" and seen[-1]["reason"] == "false positive"
    bad = service.get(f"/v1/lists/{list_id}/changes?after=-1", "hotline")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_export_streams_active_entries_in_both_formats(service: Service) -> None:
    values = sorted(random_pdq() for _ in range(7))
    list_id = service.make_list(
        "hotline", "verified", [{"signal_type": "pdq", "value": v, "category": "A"} for v in values]
    )
    csv = service.get(f"/v1/lists/{list_id}/export?format=csv", "hotline")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    rows = csv.text.splitlines()
    assert rows[0].startswith("signal_type,value") and len(rows) == 8
    jsonl = service.get(f"/v1/lists/{list_id}/export?format=jsonl", "hotline")
    records = [json.loads(line) for line in jsonl.text.splitlines()]
    assert sorted(r["value"] for r in records) == values
    assert service.get(f"/v1/lists/{list_id}/export?format=xml", "hotline").status_code == 422


def test_grants_share_and_withdraw(service: Service) -> None:
    list_id = service.make_list("hotline", "verified", [{"signal_type": "md5", "value": MD5}])
    service.org("platform")
    made = service.post(
        f"/v1/lists/{list_id}/grants",
        "hotline",
        json={"organisation": "platform", "access": "read"},
    )
    assert made.status_code == 201, made.text
    listed = service.get("/v1/lists", "platform").json()["lists"]
    assert [(item["id"], item["access"]) for item in listed] == [(list_id, "read")]
    grants = service.get(f"/v1/lists/{list_id}/grants", "hotline").json()["grants"]
    assert [(g["organisation"], g["access"]) for g in grants] == [("platform", "read")]
    unknown = service.post(
        f"/v1/lists/{list_id}/grants", "hotline", json={"organisation": "nobody", "access": "read"}
    )
    assert unknown.status_code == 404
    bad_access = service.post(
        f"/v1/lists/{list_id}/grants", "hotline", json={"organisation": "platform", "access": "all"}
    )
    assert bad_access.status_code == 400
    withdrawn = service.client.delete(
        f"/v1/lists/{list_id}/grants/platform", headers=service.headers("hotline")
    )
    assert withdrawn.status_code == 204
    assert service.get(f"/v1/lists/{list_id}", "platform").status_code == 404


def test_entry_hashes_over_http(service: Service) -> None:
    created = service.post(
        "/v1/lists", "hotline", json={"name": "images", "entry_hashes": "crops+tilts"}
    )
    assert created.status_code == 201, created.text
    list_id = created.json()["id"]
    assert created.json()["entry_hashes"] == "crops+tilts"
    bad_setting = service.client.patch(
        f"/v1/lists/{list_id}", headers=service.headers("hotline"), json={"entry_hashes": "all"}
    )
    assert bad_setting.status_code == 422
    patched = service.client.patch(
        f"/v1/lists/{list_id}", headers=service.headers("hotline"), json={"entry_hashes": "none"}
    )
    assert patched.json()["entry_hashes"] == "none"
    value = random_pdq()
    crop = flip_bits(value, 90)
    extra = [{"variant": "crop-left-5", "value": crop.upper()}]
    bad = service.post(
        f"/v1/lists/{list_id}/entries",
        "hotline",
        json={
            "entries": [
                {"signal_type": "pdq", "value": value, "extra_hashes": extra},
                {
                    "signal_type": "pdq",
                    "value": random_pdq(),
                    "extra_hashes": [{"variant": "crop-left-5", "value": "00"}],
                },
                {"signal_type": "md5", "value": MD5, "extra_hashes": extra},
            ]
        },
    )
    assert bad.status_code == 422
    assert [d["item"] for d in bad.json()["error"]["details"]] == [1, 2]
    ok = service.post(
        f"/v1/lists/{list_id}/entries",
        "hotline",
        json={"entries": [{"signal_type": "pdq", "value": value, "extra_hashes": extra}]},
    )
    assert ok.status_code == 200, ok.text
    [change] = service.get(f"/v1/lists/{list_id}/changes", "hotline").json()["changes"]
    assert change["extra_hashes"] == [{"variant": "crop-left-5", "value": crop}]
    jsonl = service.get(f"/v1/lists/{list_id}/export?format=jsonl", "hotline").text
    assert json.loads(jsonl)["extra_hashes"] == [{"variant": "crop-left-5", "value": crop}]
    csv = service.get(f"/v1/lists/{list_id}/export?format=csv", "hotline").text
    assert csv.splitlines()[0].endswith(",extra_hashes")
    service.refresh()
    matched = service.post(
        "/v1/match", "hotline", json={"hashes": [{"signal_type": "pdq", "value": crop}]}
    )
    [hit] = matched.json()["results"][0]["matches"]
    assert (hit["value"], hit["distance"], hit["entry_variant"]) == (value, 0, "crop-left-5")
