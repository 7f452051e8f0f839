"""Which relevance maps a rank asks for (tf_usaug.pipeline.relevance_stage): on a small job
with several ranks on the node, every map of the job under one lock (one child per node);
otherwise its own. The two-rank end to end check is in test_augment.py (`-m hvd`)."""
from __future__ import annotations

import fcntl
import threading
import time

from tf_usaug.pipeline.relevance_stage import LOCK_NAME, SHARED_MAX, cache_lock, share_relevance


def test_a_small_job_on_a_shared_node_shares_one_child():
    assert share_relevance(32, 2) and share_relevance(SHARED_MAX, 8)
    assert not share_relevance(32, 1)  # alone on the node: its own child, as always
    assert not share_relevance(SHARED_MAX + 1, 8)  # a large job: each rank its own maps


def test_the_cache_lock_serialises_ranks_and_is_released(tmp_path):
    order = []

    def rank(name, hold):
        with cache_lock(tmp_path):
            order.append(f"{name} in")
            time.sleep(hold)
            order.append(f"{name} out")

    first = threading.Thread(target=rank, args=("first", 0.3))
    first.start()
    time.sleep(0.1)
    rank("second", 0)
    first.join()
    assert order == ["first in", "first out", "second in", "second out"]
    with open(tmp_path / LOCK_NAME) as fh:  # free again: a non-blocking lock succeeds
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with cache_lock(tmp_path / "unused", enabled=False):
        pass
    assert not (tmp_path / "unused").exists()
