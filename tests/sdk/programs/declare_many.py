# A Python program declaring COUNT secrets at start-up (default 1,000), then using the last.
import asyncio
import os

from nitric.resources import secret

count = int(os.environ.get("COUNT", "1000"))
refs = [secret(f"py-many-{i}").allow("put", "access") for i in range(count)]


async def main():
    await refs[-1].put("last")
    print(f"declared {count} {str(await refs[-1].latest().access())}")


asyncio.get_event_loop().run_until_complete(main())
