"""A notification writer in its own process, for the test that kills it mid-batch.

It handles each event, then pauses before the ack, so a SIGKILL lands after some commits
and before their acks, with the rest of its batch read but not handled.
"""

from __future__ import annotations

import asyncio
import sys

from services.notify import writer
from shared.settings import Settings
from shared.web import open_runtime


async def main() -> None:
    settings = Settings.from_env()
    async with open_runtime(settings) as rt:
        consumer = writer.consumer(rt, name="doomed", batch_size=200)

        async def slow_handler(envelope):  # type: ignore[no-untyped-def]
            await writer.handle_event(rt, envelope)
            print("handled", flush=True)
            await asyncio.sleep(0.02)  # committed, not yet acked

        consumer.handler = slow_handler
        await consumer.ensure_group()
        print("ready", flush=True)
        while True:
            await consumer.read_once(block_ms=1000)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
