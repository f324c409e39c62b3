"""PCM16 mono at any sample rate → 16 kHz PCM16, the rate every live session runs at.

libswresample (through PyAV) filters as it converts, so 44.1 or 48 kHz microphone audio is
not aliased; the resampler keeps its filter state from frame to frame, as a stream needs.
"""

from __future__ import annotations

import av
import numpy as np

TARGET_RATE = 16000
MIN_RATE, MAX_RATE = 8000, 192000


class PcmResampler:
    """One stream's converter; `rate` is the client's sample rate."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._resampler = (
            None
            if rate == TARGET_RATE
            else av.AudioResampler(format="s16", layout="mono", rate=TARGET_RATE)
        )

    def __call__(self, pcm: bytes) -> bytes:
        if self._resampler is None:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        if not samples.size:
            return b""
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self.rate
        return b"".join(f.to_ndarray().tobytes() for f in self._resampler.resample(frame))

    def flush(self) -> bytes:
        """What the filter still holds (call once, when the stream or its rate ends)."""
        if self._resampler is None:
            return b""
        return b"".join(f.to_ndarray().tobytes() for f in self._resampler.resample(None))
