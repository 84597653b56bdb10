"""The HTTP service under load: `POST /v1/match` with single hashes, batches and image uploads.

Builds (or reuses) a SQLite store holding one list of N random PDQ entries, an organisation and a
key with the `match` scope, all through the `hashwatch` CLI; starts `hashwatch serve` as a
subprocess (once per worker count) and waits until every worker answers `/readyz` and the server
has gone idle; then drives it from a separate process, wrk, over loopback, with the bodies
prepared here and posted by bench/service_bodies.lua:

- single: one PDQ hash per request, from a pool in which half the hashes are stored values with
  1-8 bits flipped (they match) and half are random (they do not);
- batch-1000 and batch-10000: the same mix, 1,000 or 10,000 hashes per request;
- image: a multipart upload of a generated 1 MP JPEG (about 160 KB), hashed and matched.

wrk runs a closed loop (each connection sends its next request when the answer arrives) on one
thread; it shares the machine's cores with the server, as a load balancer or client on the same
host would. Before each run one request of every kind is checked by hand (status 200, one result
per hash, the expected hits); during the runs wrk counts every response of 400 and over and every
socket error, and any such error is reported loudly. Figures are printed and written to
docs/benchmarks.md.

The store, its key, the request bodies and the logs (server-W.log, wrk.log) are kept in
--data-dir and the store is reused while its size, seed and the schema's migrations stay the
same. Needs wrk on the PATH (Debian: apt-get install wrk).

    python bench/service.py                                  # 1M entries, 1 and 2 workers
    python bench/service.py --entries 100000 --duration 5 --no-write   # a quick try
    python bench/service.py --scenarios image --no-write      # image uploads alone
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from report import write_section

import hashwatch
from hashwatch.samples import encode, generate_image

HERE = Path(__file__).resolve().parent
LUA = HERE / "service_bodies.lua"
WRK_TIMEOUT = "30s"  # wrk's default of 2 s would drop (not time) slow 10,000-hash batches
BOUNDARY = "hashwatch-bench-boundary-7d1f"
PDQ_BYTES = 32
EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Disconnect|Exit))\b", re.MULTILINE)


@dataclass
class Scenario:
    name: str
    per_request: int  # hashes per request; 1 for an image
    unit: str  # what per_request counts: "hashes" or "images"
    connections: int
    content_type: str = "application/json"
    bodies: list[bytes] = field(default_factory=list)
    hits: list[int] = field(default_factory=list)  # expected matches in each body
    path: Path | None = None


@dataclass
class Result:
    workers: int
    scenario: Scenario
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: dict[str, int]
    server_cores: float
    wrk_cores: float
    other_cores: float  # everything else on the machine: other people's work is noise here

    @property
    def items_per_s(self) -> float:
        return self.requests_per_s * self.scenario.per_request

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


# --- the store -------------------------------------------------------------------------------


def hashwatch_command() -> str:
    beside = Path(sys.executable).parent / "hashwatch"
    found = str(beside) if beside.exists() else shutil.which("hashwatch")
    if not found:
        raise SystemExit("the hashwatch command is not installed beside this Python")
    return found


def cli(*args: str) -> str:
    completed = subprocess.run(
        [hashwatch_command(), *args], capture_output=True, text=True, check=False
    )
    if completed.returncode:
        raise SystemExit(
            f"hashwatch {' '.join(args)} failed ({completed.returncode}):\n{completed.stderr}"
        )
    return completed.stdout


def stored_codes(entries: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(entries, PDQ_BYTES), dtype=np.uint8)


def schema_fingerprint() -> str:
    """Changes whenever a migration does, so a store made by older code is built again."""
    digest = hashlib.sha256(hashwatch.__version__.encode())
    versions = Path(hashwatch.__file__).parent / "store" / "migrations" / "versions"
    for path in sorted(versions.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def prepare_store(folder: Path, codes: np.ndarray, seed: int, rebuild: bool) -> tuple[str, str]:
    """The store's URL and an API key; reused from an earlier run when nothing has changed."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"store-{len(codes)}-{seed}"
    database, marker = stem.with_suffix(".db"), stem.with_suffix(".json")
    url = f"sqlite:///{database}"
    wanted = {"entries": len(codes), "seed": seed, "schema": schema_fingerprint()}
    if marker.exists() and database.exists() and not rebuild:
        saved = json.loads(marker.read_text())
        if {k: saved.get(k) for k in wanted} == wanted:
            print(f"reusing {database} ({len(codes):,} PDQ entries)")
            cli("db", "upgrade", "--db", url)
            return url, str(saved["key"])
    for suffix in (".db", ".db-wal", ".db-shm", ".json"):
        stem.with_suffix(suffix).unlink(missing_ok=True)
    csv_path = stem.with_suffix(".csv")
    print(f"building {database}: {len(codes):,} random PDQ entries")
    started = time.perf_counter()
    with csv_path.open("w") as handle:
        handle.write("signal_type,value\n")
        for row in codes:
            handle.write(f"pdq,{row.tobytes().hex()}\n")
    cli("orgs", "create", "bench", "--db", url)
    cli("lists", "create", "bench", "--db", url, "--org", "bench")
    print(
        "  " + cli("lists", "import", "bench", str(csv_path), "--db", url, "--org", "bench").strip()
    )
    output = cli("keys", "create", "--org", "bench", "--scopes", "match", "--db", url)
    key = output.splitlines()[0].strip()
    csv_path.unlink()
    marker.write_text(json.dumps({**wanted, "key": key}))
    print(f"  built in {time.perf_counter() - started:.0f} s")
    return url, key


# --- request bodies --------------------------------------------------------------------------


def queries(
    codes: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[list[str], np.ndarray]:
    """Hex PDQ values in random order, and which ones are near copies: half are stored codes
    with 1-8 bits flipped (they match at the default threshold of 31), half random (at 1M
    entries, 80 bits or more from every stored code)."""
    near = rng.permutation(count) < count // 2
    values = rng.integers(0, 256, size=(count, PDQ_BYTES), dtype=np.uint8)
    rows = rng.integers(0, len(codes), size=count)
    for i in np.flatnonzero(near):
        values[i] = codes[rows[i]]
        for bit in rng.choice(256, size=int(rng.integers(1, 9)), replace=False):
            values[i, bit // 8] ^= np.uint8(1 << (bit % 8))
    return [value.tobytes().hex() for value in values], near


def hash_body(values: list[str]) -> bytes:
    items = [{"signal_type": "pdq", "value": value} for value in values]
    return json.dumps({"hashes": items}, separators=(",", ":")).encode()


def image_body(seed: int) -> bytes:
    jpeg = encode(generate_image(seed, 1152, 864), "JPEG", quality=90)
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="bench-{seed}.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + jpeg + f"\r\n--{BOUNDARY}--\r\n".encode()


def build_scenarios(
    codes: np.ndarray,
    seed: int,
    folder: Path,
    chosen: list[str],
    single_connections: int,
    batch_connections: int,
) -> list[Scenario]:
    rng = np.random.default_rng(seed + 1)
    scenarios = []
    for name, per_request, pool, connections in (
        ("single", 1, 5000, single_connections),
        ("batch-1000", 1000, 16, batch_connections),
        ("batch-10000", 10_000, 4, max(2, batch_connections // 2)),
    ):
        if name not in chosen:
            continue
        scenario = Scenario(name, per_request, "hashes", connections)
        if per_request == 1:  # a pool of single hashes, half of them near copies
            values, near = queries(codes, pool, rng)
            scenario.bodies = [hash_body([value]) for value in values]
            scenario.hits = [int(hit) for hit in near]
        else:
            for _ in range(pool):
                values, near = queries(codes, per_request, rng)
                scenario.bodies.append(hash_body(values))
                scenario.hits.append(int(near.sum()))
        scenarios.append(scenario)
    if "image" in chosen:
        scenario = Scenario("image", 1, "images", 4, f"multipart/form-data; boundary={BOUNDARY}")
        for i in range(8):
            scenario.bodies.append(image_body(1000 + i))
            scenario.hits.append(0)  # the list holds random codes, not these images
        scenarios.append(scenario)
    for scenario in scenarios:
        scenario.path = folder / f"bodies-{scenario.name}.bin"
        with scenario.path.open("wb") as handle:
            for body in scenario.bodies:
                handle.write(f"{len(body)}\n".encode() + body)
    return scenarios


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue.extend(parents.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds spent by every process on the machine since boot (all cores)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(pid: int, limit_s: float) -> float:
    """Wait (up to limit_s) until processes other than the server use under a quarter of a
    core, as the machine may be shared; the cores they used over the last 2 s."""
    started = time.perf_counter()
    while True:
        tree = process_tree(pid)
        busy, server = machine_busy_seconds(), cpu_seconds(tree)
        time.sleep(2)
        other = (machine_busy_seconds() - busy - (cpu_seconds(tree) - server)) / 2
        if other < 0.25 or time.perf_counter() - started > limit_s:
            return other
        print(f"  waiting for a quiet machine: other processes use {other:.2f} cores")


def resident_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except OSError:
            continue
    return total * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def running_server(
    url: str, workers: int, log_path: Path, extra: Sequence[str] = ()
) -> Iterator[tuple[str, int]]:
    port = free_port()
    command = [
        hashwatch_command(), "serve", "--db", url, "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--rate-limit", "0", *extra,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield f"http://127.0.0.1:{port}", server.pid
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def log_tail(log_path: Path, lines: int = 30) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_ready(base: str, pid: int, log_path: Path, limit_s: float) -> float:
    """Seconds until /readyz answers 200 twenty times running, each on a new connection (any
    worker may take it); then wait until the whole server has gone idle (no worker loading)."""
    started = time.perf_counter()
    running, last, said = 0, "no answer", 0.0
    while running < 20:
        waited = time.perf_counter() - started
        if waited > limit_s:
            raise SystemExit(
                f"server not ready after {limit_s:.0f} s ({last}):\n{log_tail(log_path)}"
            )
        if _zombie(pid):
            raise SystemExit(f"server exited while starting:\n{log_tail(log_path)}")
        if waited - said >= 30:
            said = waited
            print(f"  waiting for /readyz: {last} after {waited:.0f} s")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
                running, last = running + 1, f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            running, last = 0, f"HTTP {error.code}"
            time.sleep(0.5)
        except OSError as error:
            running, last = 0, str(error)
            time.sleep(0.5)
    ready = time.perf_counter() - started
    while time.perf_counter() - started < limit_s:
        tree = process_tree(pid)
        before = cpu_seconds(tree)
        time.sleep(1)
        if cpu_seconds(tree) - before < 0.05:
            break
    return ready


def _zombie(pid: int) -> bool:
    """Whether the process has exited (a zombie until waited for, or gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def logged_exceptions(log_path: Path, workers: int) -> list[str]:
    """Notes on the exceptions the server logged, by type. A ClientDisconnect is expected as
    each wrk run stops, closing connections with requests still in flight; any other is not,
    and its note is in bold."""
    found = EXCEPTION.findall(log_path.read_text(errors="replace"))
    notes = []
    for name in sorted(set(found)):
        count = f"{name} {found.count(name)} times with {workers_text(workers)}"
        if name.endswith("ClientDisconnect"):
            notes.append(f"the server logged {count}, from wrk ending each run mid-request")
        else:
            notes.append(f"**the server logged {count}**: see {log_path}")
    return notes


def post(base: str, key: str, scenario: Scenario, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{base}/v1/match",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": scenario.content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()[:500].decode(errors="replace")


def check_responses(base: str, key: str, scenarios: list[Scenario]) -> list[str]:
    """Send one request of each kind (two single hashes: a hit and a miss); say what was wrong."""
    problems = []
    for scenario in scenarios:
        picks = [0]
        if scenario.per_request == 1 and scenario.unit == "hashes":  # a hit and a miss
            picks = [scenario.hits.index(1), scenario.hits.index(0)]
        for index in picks:
            status, payload = post(base, key, scenario, scenario.bodies[index])
            what = f"{scenario.name} body {index}"
            if status != 200:
                problems.append(f"{what}: HTTP {status}: {payload}")
                continue
            matched = _matched(payload)
            expected_items = 1 if scenario.unit == "images" else scenario.per_request
            if matched is None:
                problems.append(f"{what}: unexpected response shape: {str(payload)[:300]}")
            elif len(matched) != expected_items:
                problems.append(f"{what}: {len(matched)} results for {expected_items} items")
            elif sum(matched) != scenario.hits[index]:
                problems.append(
                    f"{what}: {sum(matched)} items matched, expected {scenario.hits[index]}"
                )
            else:
                print(f"  checked {what}: 200, {len(matched)} results, {sum(matched)} matched")
    return problems


def _matched(payload: Any) -> list[bool] | None:
    """Whether each result in a /v1/match answer has a match, or None for an unknown shape."""
    if not isinstance(payload, dict):
        return None
    results = payload.get("results")
    if isinstance(results, list) and all(isinstance(r, dict) for r in results):
        return [bool(r.get("matches")) for r in results]
    if "matches" in payload:  # one image: one result
        return [bool(payload["matches"])]
    return None


# --- load ------------------------------------------------------------------------------------


def wrk_command(base: str, key: str, scenario: Scenario, duration: int) -> list[str]:
    return [
        "wrk", "-t1", f"-c{scenario.connections}", f"-d{duration}s", "--timeout", WRK_TIMEOUT,
        "--latency", "-s", str(LUA), f"{base}/v1/match", "--", str(scenario.path),
        scenario.content_type, key,
    ]  # fmt: skip


def run_wrk(
    base: str, key: str, scenario: Scenario, duration: int, pid: int, workers: int, log: Path
) -> Result:
    tree = process_tree(pid)
    server_before = cpu_seconds(tree)
    machine_before = machine_busy_seconds()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        wrk_command(base, key, scenario, duration), capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    server_cores = (cpu_seconds(tree) - server_before) / elapsed
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cores = (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) / elapsed
    busy_cores = (machine_busy_seconds() - machine_before) / elapsed
    with log.open("a") as handle:
        handle.write(f"== {workers} workers, {scenario.name}\n{completed.stdout}{completed.stderr}")
    lines = [line for line in completed.stdout.splitlines() if line.startswith("WRK_JSON ")]
    if completed.returncode or not lines:
        raise SystemExit(
            f"wrk failed ({completed.returncode}):\n{completed.stdout}{completed.stderr}"
        )
    data = json.loads(lines[-1].removeprefix("WRK_JSON "))
    errors = {k: int(data[k]) for k in ("status", "connect", "read", "write", "timeout")}
    return Result(
        workers=workers,
        scenario=scenario,
        requests_per_s=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        requests=int(data["requests"]),
        errors=errors,
        server_cores=server_cores,
        wrk_cores=wrk_cores,
        other_cores=max(busy_cores - server_cores - wrk_cores, 0.0),
    )


def workers_text(workers: int) -> str:
    return f"{workers} worker{'s' if workers > 1 else ''}"


def describe_errors(result: Result) -> str:
    parts = [f"{count} {kind}" for kind, count in result.errors.items() if count]
    return ", ".join(parts) if parts else "0"


# --- the report ------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    lines = [
        "| server workers | body | connections | requests | requests/s | hashes or images/s "
        "| p50 ms | p90 ms | p99 ms | max ms | errors | CPU: server | wrk | other |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        errors = describe_errors(r)
        lines.append(
            f"| {r.workers} | {r.scenario.name} | {r.scenario.connections} | {r.requests:,} "
            f"| {r.requests_per_s:,.1f} | {r.items_per_s:,.0f} {r.scenario.unit} "
            f"| {r.p50_ms:.1f} | {r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.0f} "
            f"| {errors if errors == '0' else f'**{errors}**'} "
            f"| {r.server_cores:.2f} | {r.wrk_cores:.2f} | {r.other_cores:.2f} |"
        )
    return "\n".join(lines)


def verdicts(results: list[Result]) -> list[str]:
    lines = []
    for r in results:
        if r.scenario.name == "single":
            ok = r.requests_per_s >= 1000 and r.p99_ms < 50 and not r.error_count
            lines.append(
                f"{workers_text(r.workers)}, single hashes: {r.requests_per_s:,.0f} requests/s, "
                f"p99 {r.p99_ms:.1f} ms: {'meets' if ok else 'MISSES'} the target of 1,000/s "
                "with p99 under 50 ms"
            )
        elif r.scenario.name.startswith("batch"):
            ok = r.items_per_s >= 20_000 and not r.error_count
            lines.append(
                f"{workers_text(r.workers)}, {r.scenario.name}: {r.items_per_s:,.0f} hashes/s: "
                f"{'meets' if ok else 'MISSES'} the target of 20,000 hashes/s"
            )
    return lines


def versions() -> str:
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    wrk_version = (wrk.stdout or wrk.stderr).split("[")[0].strip()
    packages = ", ".join(f"{name} {version(name)}" for name in ("uvicorn", "fastapi", "numpy"))
    return f"hashwatch {hashwatch.__version__}, {packages}, {wrk_version}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000, help="PDQ entries in the list")
    parser.add_argument(
        "--workers", default="1,2", help="server worker counts to run, comma-separated"
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run")
    parser.add_argument(
        "--scenarios",
        default="single,batch-1000,batch-10000,image",
        help="which runs, comma-separated, from single, batch-1000, batch-10000, image",
    )
    parser.add_argument("--single-connections", type=int, default=16)
    parser.add_argument(
        "--batch-connections",
        type=int,
        default=4,
        help="connections for batch-1000 (half as many, at least 2, for batch-10000)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/tmp/hashwatch-bench-service"),
        help="where the store, its key, request bodies and logs are kept between runs",
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=300, help="seconds to wait for the server"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=300,
        help="seconds to wait, before each run, for other processes to leave the CPUs alone",
    )
    parser.add_argument(
        "--serve-args", default="", help="more options for `hashwatch serve`, space-separated"
    )
    parser.add_argument("--rebuild", action="store_true", help="build the store again")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs alone")
    args = parser.parse_args()
    # End the server (in the finally of running_server) when this script is terminated, too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")
    chosen = args.scenarios.split(",")
    worker_counts = [int(w) for w in args.workers.split(",")]

    codes = stored_codes(args.entries, args.seed)
    url, key = prepare_store(args.data_dir, codes, args.seed, args.rebuild)
    scenarios = build_scenarios(
        codes, args.seed, args.data_dir, chosen, args.single_connections, args.batch_connections
    )
    del codes
    wrk_log = args.data_dir / "wrk.log"
    wrk_log.write_text("")
    results: list[Result] = []
    notes: list[str] = []  # facts for the report; in bold where they make figures unclean
    for workers in worker_counts:
        results += measure(args, url, key, scenarios, workers, wrk_log, notes)

    print(table(results))
    summary = verdicts(results)
    print("\n".join(summary))
    errors = any(r.error_count for r in results) or any(n.startswith("**") for n in notes)
    if errors:
        print("!!! NOT CLEAN: errors, failed checks or a busy machine; see above")
    if args.no_write:
        return
    example = " ".join(wrk_command("URL", "KEY", scenarios[0], args.duration))
    example = example.replace(str(HERE.parent) + "/", "").replace(str(args.data_dir), "DATA")
    body = (
        f"One list of {args.entries:,} random PDQ entries in a SQLite file; `hashwatch serve "
        "--workers W --rate-limit 0` on 127.0.0.1, loaded from it; wrk (one thread, a closed "
        f"loop) on the same 2 cores, {args.duration} s per run after a 3 s warm-up, posting to "
        "`/v1/match` with a key of scope `match`. Single and batch requests draw on pools of "
        "prepared bodies in which half the hashes are stored values with 1-8 bits flipped (they "
        "match) and half are random (they do not); image requests upload one of 8 generated "
        "1152x864 JPEGs (about 160 KB, multipart), which match nothing. Errors are responses of "
        "400 and over, socket errors and timeouts (30 s). CPU is in cores: the CPU time of all "
        "server processes, of wrk, and of everything else on the machine, over the run's "
        "wall-clock time; each run waits first until everything else uses under a quarter of a "
        f"core. Versions: {versions()}. wrk ran as `{example}`.\n\n"
        + table(results)
        + "\n\n"
        + "\n".join(f"- {line}" for line in summary + notes)
    )
    if errors:
        body = "**Not clean: see the errors column and the notes in bold.**\n\n" + body
    write_section("service", "HTTP service under load", body)


def measure(
    args: argparse.Namespace,
    url: str,
    key: str,
    scenarios: list[Scenario],
    workers: int,
    wrk_log: Path,
    notes: list[str],
) -> list[Result]:
    """Start the server with this many workers, check it, and run every scenario against it."""
    results = []
    server_log = args.data_dir / f"server-{workers}.log"
    with running_server(url, workers, server_log, args.serve_args.split()) as (base, pid):
        ready = wait_ready(base, pid, server_log, args.ready_timeout)
        memory = resident_bytes(process_tree(pid)) / 2**30
        print(f"{workers_text(workers)}: ready in {ready:.1f} s, {memory:.1f} GiB resident")
        notes.append(
            f"{workers_text(workers)}: ready {ready:.0f} s after start, {memory:.1f} GiB resident"
        )
        for problem in check_responses(base, key, scenarios):
            print(f"!!! CHECK FAILED: {problem}")
            notes.append(f"**check failed with {workers_text(workers)}**: {problem}")
        for scenario in scenarios:
            wait_quiet(pid, args.quiet_wait)
            run_wrk(base, key, scenario, 3, pid, workers, wrk_log)  # warm-up, not kept
            result = run_wrk(base, key, scenario, args.duration, pid, workers, wrk_log)
            results.append(result)
            print(
                f"  {scenario.name:>11} c={scenario.connections:<2} "
                f"{result.requests_per_s:9,.1f} req/s {result.items_per_s:9,.0f} "
                f"{scenario.unit}/s  p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} "
                f"ms  CPU: server {result.server_cores:.2f}, wrk {result.wrk_cores:.2f}, "
                f"other {result.other_cores:.2f} cores"
            )
            if result.error_count:
                print(f"!!! {scenario.name}: ERRORS: {describe_errors(result)}")
            if result.other_cores >= 0.25:
                busy = (
                    f"other processes used {result.other_cores:.2f} cores during "
                    f"{workers_text(workers)}, {scenario.name}: its figures are understated"
                )
                print(f"!!! {busy}")
                notes.append(f"**{busy}**")
    for line in logged_exceptions(server_log, workers):
        print(line.replace("**", "!!! ", 1).replace("**", "") if line.startswith("**") else line)
        notes.append(line)
    return results


if __name__ == "__main__":
    main()
