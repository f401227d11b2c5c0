"""Runs on a LocalCluster: the same results with 1 and 2 workers, and with a worker killed mid-run.

Clusters are started as the command line does (:func:`xalign.cli.cluster.compute_on`); the
library computes on the client it is given. A worker killed by SIGKILL loses only its task in
flight (and any result it finished that the client had not yet fetched), which the scheduler runs
again on a worker that lives; the grid's results then equal
an undisturbed run's. Each test starts its own clusters (a few seconds each) and keeps its
tasks short.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from xalign.analysis.probing import ProbeParams, run_probe_grid
from xalign.cli.cluster import compute_on
from xalign.parallel import compute_tasks
from xalign.testing import (
    PlantedSignal,
    SyntheticSpec,
    assert_stores_equal,
    local_cluster_workers,
    write_synthetic_store,
)

SPEC = SyntheticSpec(
    languages=("en", "fr"),
    steps=(0, 1000),
    layers=(0, 1),
    neurons=48,
    words=2000,
    signals=(PlantedSignal(attribute="Number", neurons=(3, 7), languages=("en", "fr"), strength=3.0),),
)
GAUSSIAN = ProbeParams(probe="gaussian", k=4)


def recorded_task(log: str, i: int, seconds: float) -> int:
    """A task that leaves one file per execution (its number and its process), then sleeps."""
    (Path(log) / f"{i}-{os.getpid()}-{uuid.uuid4().hex}").write_text("")
    time.sleep(seconds)
    return i * i


def executions(log: Path) -> list[tuple[int, int]]:
    """(task, pid) of every execution recorded so far."""
    parts = [name.split("-") for name in os.listdir(log)]
    return [(int(task), int(pid)) for task, pid, _ in parts]


def test_a_killed_worker_costs_only_its_task_in_flight(tmp_path: Path) -> None:
    from dask.delayed import delayed

    log = tmp_path / "log"
    log.mkdir()
    n = 4
    tasks = [delayed(recorded_task, pure=False)(str(log), i, 1.0) for i in range(n)]
    reported: list[int] = []
    killed: dict[str, Any] = {}

    def kill_one(result: int) -> None:
        reported.append(int(result**0.5))
        if killed:
            return
        # A worker that has started a task not yet reported is in the middle of it (tasks sleep
        # 1 s); kill it with SIGKILL, as the kernel's OOM killer or an operator would.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            running = [(task, pid) for task, pid in executions(log) if task not in reported]
            alive = {w.pid for w in local_cluster_workers()}
            candidates = [(task, pid) for task, pid in running if pid in alive]
            if candidates:
                killed["task"], killed["pid"] = candidates[0]
                killed["reported"] = set(reported)
                os.kill(killed["pid"], signal.SIGKILL)
                return
            time.sleep(0.05)
        pytest.fail("no worker was running a task to kill")

    with compute_on("local:2") as where:
        results = compute_tasks(tasks, on_done=kill_one, **where)

    assert results == [i * i for i in range(n)]
    assert sorted(reported) == list(range(n)), "each task is reported once"
    runs = executions(log)
    assert not psutil.pid_exists(killed["pid"]) or psutil.Process(killed["pid"]).status() == "zombie"
    counts = {i: sum(task == i for task, _ in runs) for i in range(n)}
    # What the killed worker ran and the client had not yet been given is lost: the task in
    # flight, and a task it had just finished whose result was still in its memory. Each of those
    # ran twice (the second time on a live worker); every other task once, including those the
    # killed worker had finished and the client had collected.
    lost = {task for task, pid in runs if pid == killed["pid"] and task not in killed["reported"]}
    assert killed["task"] in lost
    assert counts == {i: 2 if i in lost else 1 for i in range(n)}
    for task in lost:
        assert [pid for t, pid in runs if t == task].count(killed["pid"]) == 1


def _start(spec: str) -> None:
    with compute_on(spec):
        pass


def test_worker_memory_limit_and_profiler_come_from_the_dask_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import dask.config
    import distributed

    seen: dict[str, Any] = {}

    class Started(Exception):
        pass

    def cluster(**kwargs: Any) -> None:
        seen.update(kwargs, profile=dask.config.get("distributed.worker.profile.enabled"))
        raise Started

    monkeypatch.setattr(distributed, "LocalCluster", cluster)
    with pytest.raises(Started):
        _start("local:3")
    assert (seen["memory_limit"], seen["profile"]) == ("auto", False)
    assert dask.config.get("distributed.worker.profile.enabled") is True, "set for the workers only"
    settings = {"xalign.worker-memory-limit": "1GiB", "xalign.worker-profile": True}
    with dask.config.set(settings), pytest.raises(Started):
        _start("local:3")
    with dask.config.set({"xalign.worker-profile": "false"}), pytest.raises(Started):
        _start("local:1")
    assert seen["profile"] is False, "an environment variable's 'false' is false"
    with dask.config.set(settings), pytest.raises(Started):
        _start("local:3")
    assert seen == {
        "n_workers": 3,
        "threads_per_worker": 1,
        "processes": True,
        "memory_limit": "1GiB",
        "profile": True,
    }


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, str]:
    locations = {}
    for name in ("one", "two", "killed"):
        locations[name] = str(tmp_path / f"{name}.zarr")
        write_synthetic_store(locations[name], SPEC)
    return locations


def test_two_workers_and_a_killed_worker_give_the_results_of_one(stores: dict[str, str]) -> None:
    with compute_on("local:1") as where:
        one = run_probe_grid(stores["one"], params=GAUSSIAN, **where)
    assert one.slabs_run == 8
    assert one.total("done") > 0

    with compute_on("local:2") as where:
        two = run_probe_grid(stores["two"], params=GAUSSIAN, **where)
    assert two == one
    assert_stores_equal(stores["one"], stores["two"])

    after_kill: list[dict[str, int]] = []
    victims: list[int] = []

    def kill_after_first(summary: dict[str, int]) -> None:
        if victims:
            after_kill.append(summary)
            return
        # One slab is written; the two workers are busy with the next ones. Kill one.
        live = local_cluster_workers()
        assert len(live) == 2
        victim = max(live, key=lambda w: w.cpu_times().user + w.cpu_times().system)
        victims.append(victim.pid)
        os.kill(victim.pid, signal.SIGKILL)

    with compute_on("local:2") as where:
        killed = run_probe_grid(stores["killed"], params=GAUSSIAN, on_slab=kill_after_first, **where)
    assert victims, "no worker was killed"
    assert len(after_kill) == 7, "the run went on after the kill and reported every other slab"
    assert killed == one
    assert_stores_equal(stores["one"], stores["killed"])


def test_the_library_uses_the_notebooks_own_client_and_starts_nothing(tmp_path: Path) -> None:
    """As in a notebook: the user's LocalCluster and Client; xalign's functions take no scheduler
    and run their tasks there, and a cluster name given to the library is refused."""
    from distributed import Client, LocalCluster, get_task_stream

    from xalign.parallel import SchedulerError

    location = str(tmp_path / "s.zarr")
    write_synthetic_store(location, SPEC)
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        before = set(client.scheduler_info()["workers"])
        with get_task_stream(client) as stream:
            report = run_probe_grid(location, params=GAUSSIAN, layers=[1])
        assert report.slabs_run == 4
        ran = [task for task in stream.data if str(task["key"]).startswith("_run_slab")]
        assert len(ran) == 4, "every slab ran on the user's cluster"
        # The public API, as in a notebook: lazy results computed on the user's client.
        import xalign

        store = xalign.open_store(location)
        with get_task_stream(client) as stream:
            lazy = xalign.probe(store, GAUSSIAN, layers=[1]).compute()
        assert sum("probe-slab" in str(task["key"]) for task in stream.data) == 4
        stored = store.results("probe").sel(layer=[1]).compute()
        for name in lazy.data_vars:
            np.testing.assert_array_equal(lazy[name].values, stored[name].values, err_msg=name)
        pairs = xalign.persist(xalign.overlap(store), store).result
        assert pairs["overlap"].sel(step=1000, layer=1, attribute="Number").compute().shape == (2, 2)
        assert set(client.scheduler_info()["workers"]) == before, "no worker was added"
        assert client.status == "running", "xalign leaves the user's client open"
    with pytest.raises(SchedulerError, match="start no cluster"):
        run_probe_grid(location, params=GAUSSIAN, scheduler="local:2")
