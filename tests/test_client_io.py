"""client_io's pure parts: big bodies take turns within a byte budget."""

from __future__ import annotations

import threading
import time

from zto.client_io import BodyBudget


def test_big_bodies_take_turns_first_come_first_served():
    budget = BodyBudget(capacity=16)
    assert budget.acquire(8) == 8 and budget.acquire(8) == 8
    order = []

    def wait_for_turn(name: str, size: int) -> None:
        budget.acquire(size)
        order.append(name)

    first = threading.Thread(target=wait_for_turn, args=("first", 8), daemon=True)
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=wait_for_turn, args=("second", 4), daemon=True)
    second.start()
    time.sleep(0.05)
    assert order == []  # the budget is spent: both wait
    budget.release(4)
    time.sleep(0.05)
    assert order == []  # 4 free: enough for the second, but the first came first
    budget.release(4)
    first.join(5)
    time.sleep(0.05)
    assert order == ["first"]
    budget.release(8)
    second.join(5)
    assert order == ["first", "second"]


def test_a_body_larger_than_the_budget_waits_for_all_of_it():
    budget = BodyBudget(capacity=16)
    taken = budget.acquire(4)
    done = threading.Event()

    def huge() -> None:
        budget.release(budget.acquire(100))
        done.set()

    threading.Thread(target=huge, daemon=True).start()
    assert not done.wait(0.1)
    budget.release(taken)
    assert done.wait(5)
