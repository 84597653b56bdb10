"""The `hashwatch` command, run in-process: JSON on stdout, errors on stderr, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
import pytest
import skimage.data
from PIL import Image
from typer.testing import CliRunner

from hashwatch.cli import app
from hashwatch.signals.pdq import PDQ
from tests.imaging import encode

runner = CliRunner()


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), input=input, env=env)


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@pytest.fixture
def photo_dir(tmp_path: Path, photos: dict[str, np.ndarray]) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name in ("astronaut", "coffee"):
        (folder / f"{name}.png").write_bytes(encode(photos[name], "PNG"))
    (folder / "sub" / "rocket.jpg").write_bytes(encode(photos["rocket"], "JPEG", quality=92))
    return folder


def test_hash_prints_one_json_line_per_file(photo_dir: Path) -> None:
    result = run("hash", str(photo_dir), "--workers", "2")
    assert result.exit_code == 0, result.output
    records = lines(result.stdout)
    assert [Path(r["path"]).name for r in records] == ["astronaut.png", "coffee.png", "rocket.jpg"]
    for record in records:
        assert set(record) == {"path", "md5", "sha1", "sha256", "pdq", "pdq_quality"}
        assert len(record["pdq"]) == 64 and 0 <= record["pdq_quality"] <= 100


def test_hash_processes_every_file_and_exits_1_if_any_failed(photo_dir: Path) -> None:
    (photo_dir / "empty.jpg").write_bytes(b"")
    (photo_dir / "notes.txt").write_text("not an image")
    result = run("hash", str(photo_dir), str(photo_dir / "missing.png"))
    assert result.exit_code == 1
    by_name = {Path(r["path"]).name: r for r in lines(result.stdout)}
    assert len(by_name) == 6
    assert by_name["empty.jpg"] == {
        "path": str(photo_dir / "empty.jpg"),
        "error": "empty file (0 bytes)",
    }
    assert by_name["notes.txt"]["error"].startswith("not an image in a supported format")
    assert "md5" in by_name["notes.txt"]  # readable bytes still get their exact hashes
    assert by_name["missing.png"]["error"] == "could not read file: No such file or directory"
    assert "pdq" in by_name["coffee.png"]


def test_hash_limits_can_be_set_by_option_and_environment(photo_dir: Path) -> None:
    result = run("hash", str(photo_dir / "coffee.png"), "--max-pixels", "1000")
    assert result.exit_code == 1
    assert "over the limit of 0.001 million" in lines(result.stdout)[0]["error"]
    result = run("hash", str(photo_dir / "coffee.png"), env={"HASHWATCH_MAX_BYTES": "1000"})
    assert "over the limit of 1,000 bytes" in lines(result.stdout)[0]["error"]


def test_a_list_imported_from_csv_matches_reencoded_copies_and_not_others(
    store_url: str, tmp_path: Path, photo_dir: Path, photos: dict[str, np.ndarray]
) -> None:
    hashed = lines(run("hash", str(photo_dir)).stdout)
    csv_file = tmp_path / "list.csv"
    csv_file.write_text(
        "signal_type,value,category,labels,source,note\n"
        + "".join(f"pdq,{r['pdq']},B2,age:9-12,hotline,{Path(r['path']).name}\n" for r in hashed)
    )
    assert run("lists", "create", "partner", "--db", store_url).exit_code == 0
    imported = run("lists", "import", "partner", str(csv_file), "--db", store_url)
    assert imported.exit_code == 0, imported.output
    assert lines(imported.stdout) == [
        {
            "list": "partner",
            "format": "csv",
            "added": 3,
            "already_present": 0,
            "revoked_kept": 0,
            "skipped_unsupported": 0,
            "rejected": 0,
        }
    ]

    queries = tmp_path / "queries"
    queries.mkdir()
    coffee = Image.fromarray(photos["coffee"])
    (queries / "coffee-q70.jpg").write_bytes(encode(coffee, "JPEG", quality=70))
    (queries / "coffee-half.jpg").write_bytes(encode(coffee.resize((300, 200)), "JPEG"))
    (queries / "cat.jpg").write_bytes(encode(photos["chelsea"], "JPEG"))
    result = run("match", str(queries), "--db", store_url)
    assert result.exit_code == 0, result.output
    by_name = {Path(r["path"]).name: r for r in lines(result.stdout)}
    assert by_name["cat.jpg"]["matches"] == []
    for name in ("coffee-q70.jpg", "coffee-half.jpg"):
        [match] = by_name[name]["matches"]
        assert match["list"] == "partner" and match["signal_type"] == "pdq"
        assert match["category"] == "B2" and match["labels"] == ["age:9-12"]
        assert match["source"] == "hotline" and match["distance"] <= 31


def test_variants_through_the_cli(
    store_url: str, tmp_path: Path, photo_dir: Path, photos: dict[str, np.ndarray]
) -> None:
    (coffee,) = lines(run("hash", str(photo_dir / "coffee.png"), "--variants", "dihedral").stdout)
    assert len(coffee["pdq_variants"]) == 7 and coffee["pdq_variants"][0]["variant"] == "rotate-90"
    assert (
        run("lists", "create", "turns", "--variants", "dihedral", "--db", store_url).exit_code == 0
    )
    csv_file = tmp_path / "list.csv"
    csv_file.write_text(f"signal_type,value\npdq,{coffee['pdq']}\n")
    assert run("lists", "import", "turns", str(csv_file), "--db", store_url).exit_code == 0
    mirrored = tmp_path / "mirrored.jpg"
    mirrored.write_bytes(encode(np.ascontiguousarray(photos["coffee"][:, ::-1]), "JPEG"))
    (found,) = lines(run("match", str(mirrored), "--db", store_url).stdout)
    assert [(m["list"], m["variant"]) for m in found["matches"]] == [("turns", "flip-horizontal")]
    (plain,) = lines(run("match", str(mirrored), "--variants", "none", "--db", store_url).stdout)
    assert plain["matches"] == []
    updated = run("lists", "update", "turns", "--variants", "none", "--db", store_url)
    assert lines(updated.stdout)[0]["variants"] == []
    assert lines(run("match", str(mirrored), "--db", store_url).stdout)[0]["matches"] == []
    bad = run("lists", "update", "turns", "--variants", "sideways", "--db", store_url)
    assert bad.exit_code == 1 and "unknown variant kind 'sideways'" in bad.output


def test_required_grades_through_the_cli(store_url: str) -> None:
    made = run("lists", "create", "graded", "--required-grades", "3", "--db", store_url)
    assert made.exit_code == 0 and lines(made.stdout)[0]["required_grades"] == 3
    updated = run("lists", "update", "graded", "--required-grades", "1", "--db", store_url)
    assert lines(updated.stdout)[0]["required_grades"] == 1
    bad = run("lists", "update", "graded", "--required-grades", "0", "--db", store_url)
    assert bad.exit_code == 1 and "required grades must be" in bad.output


def test_list_lifecycle_through_the_cli(store_url: str, tmp_path: Path) -> None:
    db = ("--db", store_url)
    value = "ab" * 32
    assert (
        run(
            "lists", "create", "hotline", "--threshold", "pdq=28", "--description", "test", *db
        ).exit_code
        == 0
    )
    jsonl = tmp_path / "entries.jsonl"
    jsonl.write_text(
        json.dumps({"signal_type": "pdq", "value": value, "category": "A", "labels": ["x"]})
        + "\n"
        + json.dumps({"signal_type": "md5", "value": "cd" * 16})
        + "\n"
    )
    imported = run("lists", "import", "hotline", str(jsonl), *db)
    assert lines(imported.stdout)[0]["format"] == "jsonl"

    shown = json.loads(run("lists", "show", "hotline", *db).stdout)
    assert shown["entries"] == 2 and shown["thresholds"]["pdq"] == 28
    assert shown["by_signal_type"] == {"md5": 1, "pdq": 1}

    matched = lines(
        run("match", "--hash", f"pdq:{value.upper()}", "--hash", "md5:" + "00" * 16, *db).stdout
    )
    assert [len(m["matches"]) for m in matched] == [1, 0]

    revoked = run("lists", "revoke", "hotline", value, "--reason", "false positive", *db)
    assert revoked.exit_code == 0, revoked.output
    assert lines(revoked.stdout)[0]["seq"] == 3
    assert lines(run("match", "--hash", f"pdq:{value}", *db).stdout)[0]["matches"] == []

    feed = lines(run("lists", "changes", "hotline", "--after", "1", *db).stdout)
    assert [(c["seq"], c["kind"]) for c in feed] == [(2, "add"), (3, "revoke")]
    assert feed[1]["reason"] == "false positive"

    exported = run("lists", "export", "hotline", *db)
    assert (
        exported.stdout
        == "signal_type,value,category,labels,source,note\nmd5," + "cd" * 16 + ",,,,\n"
    )
    out = tmp_path / "out.jsonl"
    assert (
        run("lists", "export", "hotline", "--format", "jsonl", "--output", str(out), *db).exit_code
        == 0
    )
    assert lines(out.read_text()) == [
        {
            "signal_type": "md5",
            "value": "cd" * 16,
            "category": None,
            "labels": [],
            "source": "",
            "note": "",
        }
    ]

    actions = [e["action"] for e in lines(run("audit", "--list", "hotline", *db).stdout)]
    assert actions == ["entry.revoke", "entries.add", "list.create"]
    assert [s["name"] for s in lines(run("lists", "show", *db).stdout)] == ["hotline"]


def test_a_rejected_import_names_every_bad_line_and_changes_nothing(
    store_url: str, tmp_path: Path
) -> None:
    db = ("--db", store_url)
    run("lists", "create", "hotline", *db)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "signal_type,value,category,labels,source,note\n"
        + "md5,"
        + "a" * 32
        + ",A,,,\n"
        + "md5,xyz,A,,,\n"
        + "pdq,"
        + "b" * 64
        + ",Z,,,\n"
    )
    result = run("lists", "import", "hotline", str(bad), *db)
    assert result.exit_code == 1
    assert lines(result.stdout) == [{"list": "hotline", "added": 0, "rejected": 2}]
    assert "line 3: md5 value must be 32 hex characters, got 3: 'xyz'" in result.stderr
    assert "line 4: category must be one of A, B, C" in result.stderr
    assert json.loads(run("lists", "show", "hotline", *db).stdout)["entries"] == 0


def test_import_reads_standard_input_and_threatexchange_files(store_url: str) -> None:
    db = ("--db", store_url)
    run("lists", "create", "te", *db)
    text = (
        "signal_type,signal_str,collab,category,tags\npdq,"
        + "c" * 64
        + ",Sample,TRUE_POSITIVE,a b\nurl,https://x.test/,Sample,,\n"
    )
    result = run("lists", "import", "te", "-", *db, input=text)
    assert result.exit_code == 0, result.output
    assert lines(result.stdout)[0] | {} == {
        "list": "te",
        "format": "threatexchange",
        "added": 1,
        "already_present": 0,
        "revoked_kept": 0,
        "skipped_unsupported": 1,
        "rejected": 0,
    }


def test_domain_errors_are_one_clear_line_with_exit_1(store_url: str) -> None:
    db = ("--db", store_url)
    result = run("lists", "show", "nope", *db)
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no list named 'nope'"
    result = run("match", "--hash", "pdq:123", *db)
    assert result.exit_code == 1
    assert "pdq value must be 64 hex characters, got 3" in result.stderr
    run("lists", "create", "dup", *db)
    assert "already exists" in run("lists", "create", "dup", *db).stderr


def test_usage_errors_exit_2() -> None:
    assert run("match").exit_code == 2
    assert run("lists", "export", "x", "--format", "xml").exit_code == 2


def test_the_database_url_comes_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    assert run("lists", "create", "from-env", env={"HASHWATCH_DB": url}).exit_code == 0
    assert (tmp_path / "env.db").exists()
    assert run("lists", "show", "from-env", "--db", url).exit_code == 0


def test_demo_builds_a_list_and_matches_as_expected(tmp_path: Path) -> None:
    result = run("demo", "--workdir", str(tmp_path / "demo"))
    assert result.exit_code == 0, result.output
    assert "16 of 16 uploads gave the expected result." in result.stdout
    assert (tmp_path / "demo" / "demo.db").exists()
    assert (
        (tmp_path / "demo" / "demo-list.csv").read_text().startswith("signal_type,value,category")
    )


def test_a_turned_copy_of_fine_texture_matches_through_its_exact_variant(
    store_url: str, tmp_path: Path
) -> None:
    # Fine texture: pdqhash.compute_dihedral's variant of a turned brick wall is about 40 bits
    # off; the hash of the turned pixels is the listed hash exactly.
    brick = np.dstack([skimage.data.brick()] * 3)
    listed = tmp_path / "brick.png"
    listed.write_bytes(encode(brick, "PNG"))
    (hashed,) = lines(run("hash", str(listed)).stdout)
    assert run("lists", "create", "walls", "--db", store_url).exit_code == 0
    csv_file = tmp_path / "list.csv"
    csv_file.write_text(f"signal_type,value\npdq,{hashed['pdq']}\n")
    assert run("lists", "import", "walls", str(csv_file), "--db", store_url).exit_code == 0
    turned = tmp_path / "turned.png"
    turned.write_bytes(encode(np.ascontiguousarray(np.rot90(brick, -1)), "PNG"))
    (plain,) = lines(run("match", str(turned), "--variants", "none", "--db", store_url).stdout)
    assert plain["matches"] == []
    (found,) = lines(run("match", str(turned), "--db", store_url).stdout)
    assert [(m["variant"], m["distance"]) for m in found["matches"]] == [("rotate-90", 0)]
    (shown,) = lines(run("hash", str(turned), "--variants", "dihedral").stdout)
    variants = {v["variant"]: v["value"] for v in shown["pdq_variants"]}
    assert variants["rotate-90"] == hashed["pdq"]
    one_call = pdqhash.compute_dihedral(np.ascontiguousarray(np.rot90(brick, -1)))[0][1]
    assert PDQ.distance(np.packbits(one_call).tobytes().hex(), hashed["pdq"]) > 31
