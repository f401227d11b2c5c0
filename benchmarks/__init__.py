"""xalign's benchmark suite: ``python -m benchmarks [--quick] [--only NAME ...]`` (see BENCHMARKS.md).

The math libraries get one thread per process unless the environment says otherwise (set here,
before numpy or torch is imported, and inherited by every process the suite starts): with the
suite's figures taken as CPU time, one thread is what makes them stable on a shared machine
(a waiting second thread spins and bills its own CPU time). Parallel speed-ups come from
processes and Dask threads, and are measured in wall time.
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
