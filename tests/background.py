"""A blocking call such as ``serve()`` or ``Watcher.run`` on a thread for one test,
stopped at the end of a ``with``: written once, so every such test stops the call the
same way, fails when it does not stop, and re-raises what the call raised."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Outcome(Generic[T]):
    """What the call gave: nothing yet, its return value or its exception."""

    def __init__(self) -> None:
        self._value: list[T] = []
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        """The call has returned or raised."""
        return bool(self._value) or self.error is not None

    @property
    def value(self) -> T:
        """The call's return value (after the ``with``)."""
        assert self._value, f"no value: {self!r}"
        return self._value[0]

    def __repr__(self) -> str:
        if self.error is not None:
            return f"Outcome(raised {self.error!r})"
        return f"Outcome({self._value[0]!r})" if self._value else "Outcome(running)"


@contextlib.contextmanager
def in_background(call: Callable[[threading.Event], T], what: str,
                  timeout: float) -> Iterator[Outcome[T]]:
    """Run ``call(stop)`` on a daemon thread; yield its :class:`Outcome`. On exit: set
    ``stop``, wait ``timeout`` seconds for the thread, fail if it is still running, and
    (when the body did not fail itself) re-raise what the call raised."""
    outcome: Outcome[T] = Outcome()
    stop = threading.Event()

    def run() -> None:
        try:
            outcome._value.append(call(stop))
        except BaseException as e:  # noqa: BLE001 - re-raised below
            outcome.error = e

    thread = threading.Thread(target=run, name=f"test-{what}", daemon=True)
    thread.start()
    try:
        yield outcome
    finally:
        stop.set()
        thread.join(timeout)
        assert not thread.is_alive(), f"{what} did not stop"
    if outcome.error is not None:
        raise outcome.error
