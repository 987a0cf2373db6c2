"""Wait for a condition with a deadline instead of sleeping a fixed time."""

import time


def wait_until(condition, timeout=10.0, interval=0.02, message=None):
    """Poll condition() until it returns a truthy value; return that value.

    Raises AssertionError naming the condition after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                "condition not met within %.1f s: %s"
                % (timeout, message or getattr(condition, "__name__", repr(condition)))
            )
        time.sleep(interval)
