"""The one backoff every retry in ShelfWatch uses (a camera stream, the broker, a refused publish)."""

from edge.retry import Backoff


def test_waits_double_up_to_the_ceiling_and_start_over_after_a_success():
    backoff = Backoff(1.0, 5.0)
    assert [backoff.next() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next() == 1.0


def test_a_ceiling_below_the_first_wait_is_the_first_wait():
    assert [Backoff(3.0, 1.0).next() for _ in range(2)] == [3.0, 3.0]
