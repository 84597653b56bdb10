"""Process settings: hashwatch's processes run native numeric code on one thread each."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
