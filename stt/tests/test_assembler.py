"""Result assembly when several workers deliver windows of one request at the same moment.

Deterministic interleavings, no sleeps deciding the outcome: a worker is stopped inside its
delivery (in the segment callback, where the old code was halfway through updating the
request's state) while a second worker delivers the next window. The old scheduler emitted
the first window's segments twice there and never completed the request.
"""

from __future__ import annotations

import sys
import threading
import time

from aistack_stt.batching import WindowResult
from aistack_stt.engine import Segment
from aistack_stt.scheduling.assembler import ResultAssembler


def _window(*texts: str, start: float = 0.0) -> WindowResult:
    segments = [
        {
            "seek": 0,
            "start": start + i,
            "end": start + i + 1,
            "text": f" {text}",
            "tokens": [1, 2],
            "temperature": 0.0,
            "avg_logprob": -0.2,
            "compression_ratio": 1.1,
            "no_speech_prob": 0.01,
        }
        for i, text in enumerate(texts)
    ]
    return WindowResult("en", 0.99, segments)


def test_a_second_worker_delivering_while_the_first_emits_never_duplicates_or_loses():
    results = [_window("one", "two"), _window("three", start=30.0)]
    emitted: list[Segment] = []
    completions: list[bool] = []
    second_done = threading.Event()

    def second_worker() -> None:
        completions.append(assembler.add(1, results[1]))
        second_done.set()

    second = threading.Thread(target=second_worker)

    def on_segment(segment: Segment) -> None:
        emitted.append(segment)
        if len(emitted) == 1:
            # Worker 1 is mid-delivery. Worker 2 delivers window 1 now; give it the time to
            # finish if nothing holds it back (the old code), then go on either way.
            second.start()
            second_done.wait(timeout=1.0)

    assembler = ResultAssembler(2, on_segment=on_segment)
    completions.append(assembler.add(0, results[0]))
    second.join(timeout=10)
    assert not second.is_alive()
    assert [s.text for s in emitted] == [" one", " two", " three"]
    assert [s.id for s in emitted] == [0, 1, 2]
    assert sorted(completions) == [False, True], "the request must complete exactly once"
    assert [s.text for s in assembler.segments()] == [" one", " two", " three"]


def test_windows_arriving_out_of_order_are_emitted_in_order_once_each():
    results = [_window(f"w{i}", start=30.0 * i) for i in range(4)]
    emitted: list[str] = []
    assembler = ResultAssembler(4, on_segment=lambda s: emitted.append(s.text.strip()))
    assert assembler.add(2, results[2]) is False
    assert assembler.add(1, results[1]) is False
    assert emitted == []  # nothing before window 0
    assert assembler.add(0, results[0]) is False
    assert emitted == ["w0", "w1", "w2"]
    assert assembler.add(1, results[1]) is False  # a duplicate changes nothing
    assert assembler.add(3, results[3]) is True
    assert emitted == ["w0", "w1", "w2", "w3"]
    assert assembler.add(3, results[3]) is False  # complete: nothing more


def test_many_workers_delivering_all_windows_at_once_give_every_segment_once_in_order():
    # Switch threads as often as the interpreter can, so deliveries interleave mid-update.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _deliver_all_at_once()
    finally:
        sys.setswitchinterval(previous)


def _deliver_all_at_once() -> None:
    count = 64
    results = [_window(f"w{i}a", f"w{i}b", start=30.0 * i) for i in range(count)]
    for _ in range(20):
        emitted: list[str] = []

        def on_segment(segment: Segment, emitted=emitted) -> None:
            emitted.append(segment.text.strip())
            time.sleep(0)  # hand the interpreter to another worker, as a real callback may

        assembler = ResultAssembler(count, on_segment=on_segment)
        start = threading.Barrier(8)
        completions: list[bool] = []

        def worker(n: int, assembler=assembler, start=start, completions=completions) -> None:
            start.wait()
            for i in range(n, count, 8):
                completions.append(assembler.add(i, results[i]))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert emitted == [f"w{i}{p}" for i in range(count) for p in "ab"]
        assert completions.count(True) == 1


def test_a_closed_assembler_ignores_late_windows_and_pins_the_first_language():
    assembler = ResultAssembler(2, pin_language=True)
    assert assembler.language is None
    assembler.add(0, WindowResult("de", 0.9, []))
    assert assembler.language == "de"
    assembler.close()
    assert assembler.add(1, _window("late")) is False
    assert assembler.segments() == []
    assert ResultAssembler(2, pin_language=False).language is None
