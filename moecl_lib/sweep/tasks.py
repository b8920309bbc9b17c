"""Independent calls on ``dask.distributed``, in order: what the chapters use to spread
their simulations (calibration members, deep-network seeds) over cores or machines.

``scheduler`` selects where the calls run, as for ``moecl sweep``:

* ``"local"`` (or ``None``): a ``LocalCluster`` of single-threaded worker processes,
  one per core, whose scheduler, workers and HTTP endpoints listen on 127.0.0.1 only;
* ``"inline"``: in this process, one call after the other (no Dask);
* an address (``tcp://host:port``; ``tls://...`` with ``security``): a running cluster.

A Dask scheduler runs whatever its clients send: a cluster reachable over a network
must use TLS (``distributed.security.Security``). Results do not depend on where a call
runs: every call draws from its own random streams (per-run streams, per-seed
generators), which ``tests/test_tasks.py`` checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from moecl_lib.sweep.execute import INLINE, dask_client, local_cluster

LOCAL = "local"


class TaskError(RuntimeError):
    """A call failed; the message names it (the other calls are cancelled)."""


@contextmanager
def shared_scheduler(
    scheduler: str | None = LOCAL, workers: int | None = None
) -> Iterator[str | None]:
    """For several :func:`map_calls` in a row: ``"local"`` (or ``None``) starts one
    local cluster and yields its address (closed on exit); ``"inline"`` and addresses
    are yielded unchanged."""
    if scheduler not in (None, LOCAL):
        yield scheduler
        return
    with local_cluster(workers) as cluster:
        yield cluster.scheduler_address


def map_calls(
    fn: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    scheduler: str | None = LOCAL,
    *,
    workers: int | None = None,
    security: Any = None,
    progress: bool = True,
    desc: str = "tasks",
) -> list[Any]:
    """``[fn(*call) for call in calls]``, run where ``scheduler`` says (module
    docstring), with a progress bar. ``fn`` must be a module-level function and the
    arguments plain picklable data. A failing call raises :class:`TaskError` naming
    its index and arguments."""
    from tqdm.auto import tqdm

    if scheduler not in (None, LOCAL, INLINE) and not isinstance(scheduler, str):
        raise ValueError(f"scheduler={scheduler!r}: 'local', 'inline' or an address")
    bar = tqdm(total=len(calls), desc=desc, disable=not progress)
    try:
        if scheduler == INLINE or not calls:
            out = []
            for i, call in enumerate(calls):
                out.append(_guarded(fn, i, call))
                bar.update()
            return out
        return _map_dask(fn, calls, scheduler, workers, security, bar)
    finally:
        bar.close()


def _guarded(fn: Callable[..., Any], i: int, call: tuple[Any, ...]) -> Any:
    try:
        return fn(*call)
    except Exception as exc:
        raise TaskError(_what(fn, i, call, exc)) from exc


def _what(fn: Callable[..., Any], i: int, call: tuple[Any, ...], exc: Exception) -> str:
    args = ", ".join(repr(a)[:60] for a in call)
    return f"call {i} {fn.__name__}({args}): {type(exc).__name__}: {exc}"


def _map_dask(
    fn: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    scheduler: str | None,
    workers: int | None,
    security: Any,
    bar: Any,
) -> list[Any]:
    from distributed import as_completed

    out: list[Any] = [None] * len(calls)
    with dask_client(scheduler, workers, security) as client:
        futures = {
            client.submit(fn, *call, pure=False): i for i, call in enumerate(calls)
        }
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                out[i] = fut.result()
            except Exception as exc:
                for other in futures:
                    other.cancel()
                raise TaskError(_what(fn, i, calls[i], exc)) from exc
            bar.update()
    return out
