"""The one watcher behind every request body's deadline (``client_io.Deadlines``)."""

import threading

from zto.client_io import Deadlines


def test_due_actions_run_and_cancelled_ones_never_do():
    deadlines = Deadlines(check_s=0.01)
    ran, cancelled_ran = threading.Event(), threading.Event()
    order = []

    def failing():
        order.append("failing")
        raise RuntimeError("one failed action must not stop the others")

    cancelled = deadlines.add(0.05, cancelled_ran.set)
    deadlines.add(0.05, failing)
    deadlines.add(0.1, lambda: (order.append("later"), ran.set()))
    Deadlines.cancel(cancelled)
    assert ran.wait(10)
    assert order == ["failing", "later"]
    assert not cancelled_ran.is_set()


def test_one_watcher_serves_every_deadline():
    deadlines = Deadlines(check_s=0.01)
    done = [threading.Event() for _ in range(50)]
    before = threading.active_count()
    for event in done:
        deadlines.add(0.02, event.set)
    assert threading.active_count() <= before + 1
    assert all(event.wait(10) for event in done)
