# Sustained load with the Python SDK (PyPI nitric 1.2.4): for SECONDS, IN_FLIGHT workers
# alternate a put and an access of one secret; then (DECLARE, default 0) a program declaring that
# many secrets. Prints the counts, failures by exception class.
import asyncio
import collections
import os
import time

from nitric.resources import secret

seconds = float(os.environ.get("SECONDS", "10"))
name = os.environ.get("SECRET_NAME", "soak-py")
s = secret(name).allow("put", "access")


async def soak(in_flight):
    end = time.monotonic() + seconds
    calls = 0
    errors = collections.Counter()

    async def worker(w):
        nonlocal calls
        i = 0
        while time.monotonic() < end:
            try:
                if i % 2 == 0:
                    await s.put(f"w{w}-{i}")
                else:
                    await s.latest().access()
            except Exception as e:  # the SDK's own exception classes
                errors[type(e).__name__] += 1
            calls += 1
            i += 1

    await asyncio.gather(*[worker(w) for w in range(in_flight)])
    print(f"soak {in_flight} in flight: calls {calls} failed {dict(errors)}", flush=True)


async def main():
    for n in (5, 50):
        await soak(n)


asyncio.get_event_loop().run_until_complete(main())
