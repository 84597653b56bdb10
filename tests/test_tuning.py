"""Process settings: hashwatch's processes run native numeric code on one thread each."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CHECK = """
import json
from threadpoolctl import threadpool_info
import numpy
before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
from hashwatch.tuning import tune_process
tune_process()
tune_process()  # a second call changes nothing
after = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
print(json.dumps([before, after]))
"""


def test_tune_process_leaves_blas_one_thread() -> None:
    # Two BLAS threads to begin with, whatever the machine, so that the limit is seen to act.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, check=True
    )
    before, after = json.loads(done.stdout)
    assert before and all(n == 2 for n in before)
    assert after == [1] * len(before)


RELEASE = """
import json
import numpy as np
from hashwatch.tuning import release_free_memory, tune_allocator

def rss_mb():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024

assert tune_allocator()  # freed blocks stay in the heap, as in hashwatch's own processes
blocks = [np.ones(1 << 20) for _ in range(60)]  # 60 blocks of 8 MB, written to
blocks.append(np.ones(1000))  # something live above them keeps the heap's top in use
peak = rss_mb()
del blocks[:-1]
kept = rss_mb()
assert release_free_memory()
print(json.dumps([peak, kept, rss_mb()]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_free_heap_memory_is_handed_back() -> None:
    done = subprocess.run(
        [sys.executable, "-c", RELEASE], capture_output=True, text=True, check=True
    )
    peak, kept, released = json.loads(done.stdout)
    # Freed, but up to 256 MB of it still the process's: the tuned allocator keeps that much.
    assert kept > peak - 300
    assert released < kept - 150  # handed back
