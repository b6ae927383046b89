"""Feature export writes in a thread: in order, bounded, and errors reach the caller."""

import threading
import time

import numpy as np
import pytest

from napari_tarrow.io.export import writes_in_background


def test_blocks_are_written_in_order_in_another_thread() -> None:
    written, threads = [], set()

    def write(block: np.ndarray) -> None:
        time.sleep(0.01)
        written.append(int(block[0]))
        threads.add(threading.current_thread().name)

    with writes_in_background(write, depth=2) as put:
        for i in range(10):
            put(np.array([i]))
    assert written == list(range(10))  # all of them, once the context exits
    assert threading.current_thread().name not in threads


def test_a_failed_write_is_raised_and_stops_the_writing() -> None:
    written = []

    def write(block: np.ndarray) -> None:
        if block[0] == 3:
            raise OSError(28, "No space left on device")
        written.append(int(block[0]))

    with pytest.raises(OSError, match="No space"), writes_in_background(write) as put:
        for i in range(10):
            put(np.array([i]))
            time.sleep(0.01)
    assert written == [0, 1, 2]


def test_the_queue_is_bounded() -> None:
    release = threading.Event()
    queued = []

    def write(block: np.ndarray) -> None:
        release.wait(5)

    def produce(put) -> None:
        for i in range(6):
            put(np.array([i]))
            queued.append(i)

    with writes_in_background(write, depth=2) as put:
        t = threading.Thread(target=produce, args=(put,))
        t.start()
        time.sleep(0.3)
        assert len(queued) <= 3  # one being written, two waiting
        release.set()
        t.join()
    assert queued == list(range(6))
