"""server.fairgate.FairGate: first come, first served admission (pure asyncio)."""
import asyncio

import pytest

from server.fairgate import FairGate


async def test_waiters_are_served_in_order_of_arrival_not_newcomers_first():
    gate = FairGate(1)
    await gate.acquire()
    order = []

    async def waiter(name):
        await gate.acquire()
        order.append(name)

    first = asyncio.ensure_future(waiter("first"))
    await asyncio.sleep(0)
    gate.release()                      # handed to "first", which has not run yet
    late = asyncio.ensure_future(waiter("newcomer"))
    await asyncio.sleep(0)
    await first
    assert order == ["first"] and gate.in_use == 1
    gate.release()
    await late
    assert order == ["first", "newcomer"]
    gate.release()
    assert gate.in_use == 0


@pytest.mark.parametrize("limit,holders", [(1, 5), (3, 10), (10, 128)])
async def test_never_more_than_limit_and_everyone_served(limit, holders):
    gate = FairGate(limit)
    inside = peak = 0
    served = []

    async def hold(i):
        nonlocal inside, peak
        await gate.acquire()
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(0)
        inside -= 1
        served.append(i)
        gate.release()

    await asyncio.gather(*(hold(i) for i in range(holders)))
    assert peak <= limit and sorted(served) == list(range(holders))
    assert gate.in_use == 0


async def test_a_waiter_that_times_out_leaves_the_queue():
    gate = FairGate(1)
    await gate.acquire()
    with pytest.raises(asyncio.TimeoutError):
        await gate.acquire(timeout=0.01)
    gate.release()
    assert gate.in_use == 0
    await gate.acquire(timeout=0.01)    # free again at once
    assert gate.in_use == 1


async def test_a_cancelled_waiter_passes_on_a_place_handed_to_it():
    gate = FairGate(1)
    await gate.acquire()
    w1 = asyncio.ensure_future(gate.acquire())
    w2 = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    gate.release()                      # w1's now...
    w1.cancel()                         # ...but it gives up before it runs
    with pytest.raises(asyncio.CancelledError):
        await w1
    await asyncio.wait_for(w2, 1)       # the place went on to w2
    assert gate.in_use == 1
    gate.release()
    assert gate.in_use == 0


async def test_a_timed_out_waiter_does_not_keep_the_one_behind_it_waiting():
    gate = FairGate(1)
    await gate.acquire()
    early = asyncio.ensure_future(gate.acquire(timeout=0.01))
    behind = asyncio.ensure_future(gate.acquire(timeout=5))
    with pytest.raises(asyncio.TimeoutError):
        await early
    assert gate.waiting == 1
    gate.release()
    await asyncio.wait_for(behind, 1)
    assert gate.in_use == 1 and gate.waiting == 0
