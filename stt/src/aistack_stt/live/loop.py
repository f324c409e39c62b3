"""The one receive loop every live protocol runs.

The loop waits for the next client message, the session's end (auto_end's final, or a
failed transcription), or the idle timeout, which does not count while a final is still
being transcribed. Everything protocol-specific (message shapes, error events, close
codes) is the adapter's (`LiveAdapter`, adapter.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from fastapi import WebSocket, WebSocketDisconnect

from ..config import StreamLimits
from ..errors import APIError
from .adapter import LiveAdapter, Step


async def receive_loop(websocket: WebSocket, limits: StreamLimits, adapter: LiveAdapter) -> None:
    try:
        await adapter.opened()
        while True:
            step = await _next(websocket, limits, adapter)
            if step is Step.CLOSED:
                return
            if step is Step.STOP:
                await _unless_gone(websocket, adapter.finish())
                return
    except WebSocketDisconnect:
        pass
    except APIError as exc:
        await adapter.failed(exc)
    finally:
        adapter.closed = True
        if adapter.session is not None:
            await adapter.session.close()


async def _next(websocket: WebSocket, limits: StreamLimits, adapter: LiveAdapter) -> Step:
    session = adapter.session
    waiter = asyncio.ensure_future(websocket.receive())
    ended = asyncio.ensure_future(session.ended.wait()) if session is not None else None
    try:
        done, _ = await asyncio.wait(
            [waiter] + ([ended] if ended else []),
            timeout=limits.idle_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        if ended is not None and not ended.done():
            ended.cancel()
    if ended is not None and ended in done:
        waiter.cancel()
        if session.failure is not None:
            raise session.failure
        return await adapter.session_ended()
    if not done:
        waiter.cancel()
        if session is not None and session.busy():
            return Step.CONTINUE
        await adapter.idle_timeout()
        return Step.CLOSED
    message = waiter.result()
    if message["type"] == "websocket.disconnect":
        return Step.CLOSED
    return await adapter.handle(message)


async def _unless_gone(websocket: WebSocket, work: Awaitable[None]) -> None:
    """Await `work` (the last finals), cancelling it when the client hangs up meanwhile.

    Nothing else reads the socket while a session finishes, so without this a client that
    left would keep its session (and its slot) until every final was done.
    """

    async def gone() -> None:
        while (await websocket.receive()).get("type") != "websocket.disconnect":
            pass  # audio or messages after stop are ignored

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(gone())
    try:
        await asyncio.wait([task, watcher], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
    finally:
        for pending in (task, watcher):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
