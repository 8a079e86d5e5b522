"""Bounded waits for cocotb testbenches: every wait has a cycle limit derived from the expected cycles.

A design that never answers (a DMA whose AXI subordinate never responds, a sink whose source never sends) must
fail the test within seconds with a message naming what was awaited, not run until a harness time limit. All
testbench waits go through :func:`wait_for`, and their limits through :func:`cycle_limit`:

``cycle_limit(expected, latency=L)`` is ``SLACK * (expected + L) + SETTLE_CYCLES``: ``expected`` is the number of
cycles the operation takes when nothing stalls (transfers, beats, K + rows + cols, ...), divided by the chance a
random stall lets a transfer through (:func:`stalled`); ``L`` is a bound on its fixed latency (pipeline depth,
memory latency per burst). ``SLACK`` (4) covers what the estimate leaves out (arbitration, refills after
bubbles) and ``SETTLE_CYCLES`` (64) the reset and start-up cycles; a design that needs more than four times the
expected cycles is a performance bug the limit is right to report.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["SETTLE_CYCLES", "SLACK", "WaitTimeout", "cycle_limit", "stalled", "wait_for", "within"]

SLACK = 4
SETTLE_CYCLES = 64


class WaitTimeout(AssertionError):
    """A bounded wait ran out of cycles; the message names what was awaited, the limit and the progress made."""


def stalled(transfers: float, *probabilities: float) -> float:
    """Expected cycles of ``transfers`` handshakes when each cycle stalls independently with each of
    ``probabilities`` (idle sources, backpressuring sinks, paused AXI channels)."""
    cycles = float(transfers)
    for probability in probabilities:
        if not 0 <= probability < 1:
            raise ValueError(f"stall probability must be in [0, 1), not {probability}")
        cycles /= 1 - probability
    return cycles


def cycle_limit(expected: float, *, latency: float = 0, slack: float = SLACK) -> int:
    """The cycle limit of a wait for an operation of ``expected`` stall-free cycles and ``latency`` fixed ones."""
    if expected < 0 or latency < 0:
        raise ValueError(f"expected and latency cycles must be non-negative, not {expected} and {latency}")
    if slack < 1:
        raise ValueError(f"slack must be at least 1, not {slack}")
    return int(slack * (expected + latency)) + SETTLE_CYCLES


async def wait_for(
    condition: Callable[[], bool],
    *,
    clock,
    cycles: int,
    what: str,
    progress: Callable[[], str] | None = None,
    settle: bool = False,
) -> int:
    """Wait until ``condition()`` is true, checking it now and after each rising edge of ``clock``; at most
    ``cycles`` edges. Returns the edges waited.

    ``settle=True`` checks after the edge's read-only phase (for conditions on design signals, which have
    settled then); otherwise right after the edge (for conditions on Python state that monitors update).
    Raises :class:`WaitTimeout` ``"<what>: not reached within <cycles> cycles (<progress()>)"``.
    """
    from cocotb.triggers import ReadOnly, RisingEdge

    if not isinstance(cycles, int) or isinstance(cycles, bool) or cycles < 0:
        raise ValueError(f"cycles must be a non-negative integer, not {cycles!r}")
    if condition():
        return 0
    for waited in range(1, cycles + 1):
        await RisingEdge(clock)
        if settle:
            await ReadOnly()
        if condition():
            return waited
    detail = f" ({progress()})" if progress is not None else ""
    raise WaitTimeout(f"{what}: not reached within {cycles} cycles{detail}")


async def within(awaitable, *, clock, cycles: int, what: str):
    """Await ``awaitable`` (a coroutine, e.g. a cocotbext-axi transaction) for at most ``cycles`` rising edges of
    ``clock``; returns its result, or cancels it and raises :class:`WaitTimeout` naming ``what``."""
    import cocotb

    task = cocotb.start_soon(awaitable)
    try:
        await wait_for(task.done, clock=clock, cycles=cycles, what=what)
    except WaitTimeout:
        task.cancel()
        raise
    return task.result()
