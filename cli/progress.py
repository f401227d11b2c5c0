"""Running a slab job from the command line: on the scheduler asked for, with a progress bar."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["persist_slabs"]


def persist_slabs(
    make: Callable[[], Any],
    store: Any,
    name: str | None,
    *,
    overwrite: bool,
    scheduler: str | None,
    desc: str,
    unit: str,
) -> Any:
    """:func:`xalign.persist` of the lazy result ``make()`` on ``scheduler``, a bar of its slabs."""
    from tqdm import tqdm

    import xalign
    from xalign.cli.cluster import compute_on

    bar = tqdm(unit=unit, desc=desc, dynamic_ncols=True, disable=None)
    try:
        with compute_on(scheduler) as where:
            return xalign.persist(
                make(),
                store,
                name,
                overwrite=overwrite,
                on_slab=lambda _: bar.update(1),
                on_plan=lambda total: setattr(bar, "total", total),
                **where,
            )
    finally:
        bar.close()
