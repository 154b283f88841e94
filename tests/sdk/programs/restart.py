# PyPI nitric 1.2.4 across a server restart: one put; "ready"; waits for a line on stdin (the
# server restarts meanwhile); then puts until one succeeds (at most 100, 100 ms apart),
# printing each outcome by the SDK's exception class.
import asyncio
import os
import sys

from nitric.resources import secret

s = secret(os.environ["SECRET_NAME"]).allow("access", "put")


async def main():
    await s.put("before the restart")
    print("ready", flush=True)
    # Read in a thread: the event loop keeps running, so grpclib sees the server go away.
    await asyncio.get_event_loop().run_in_executor(None, sys.stdin.readline)
    outcomes = []
    for _ in range(100):
        try:
            await s.put("after the restart")
            outcomes.append("OK")
            break
        except Exception as e:  # the SDK's own exception classes
            outcomes.append(type(e).__name__)
            await asyncio.sleep(0.1)
    try:
        then = f"OK {str(await s.latest().access())}"
    except Exception as e:
        then = type(e).__name__
    print(f"outcomes {' '.join(outcomes)}\nthen {then}", flush=True)


asyncio.get_event_loop().run_until_complete(main())
