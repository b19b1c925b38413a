"""Grading past one machine: the same units on Dask (`dask.distributed`) workers.

`dask_executor(scheduler, workers)` gives a concurrent.futures Executor for `grade_class`: with
no scheduler, a LocalCluster of `workers` processes (one unit at a time each); with an address,
that cluster's workers (started by dask-jobqueue on Slurm, dask-kubernetes, or `dask worker`).
Every worker needs this repository's environment (the venv, bubblewrap) and the course root at
the same path (a shared file system, as nbgrader's exchange needs). Each worker process runs
its own warm service and sandboxes; results come back to the grading process, the one writer.
A worker that dies mid-unit loses nothing: nothing of that unit was saved, and Dask runs it
again on another worker (or, after `distributed.scheduler.allowed-failures` deaths, reports it).
"""

from contextlib import contextmanager


@contextmanager
def dask_executor(scheduler: str | None, workers: int):
    from distributed import Client, LocalCluster

    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, memory_limit=0)  # each unit has its own limits
        client = Client(cluster)
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
