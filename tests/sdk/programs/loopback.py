# PyPI nitric 1.2.4: one put and one access through SERVICE_ADDRESS (issue 13 item 6).
import asyncio
import os

from nitric.resources import secret

s = secret(os.environ["SECRET_NAME"]).allow("access", "put")


async def main():
    p = await s.put(f"via {os.environ['SERVICE_ADDRESS']}")
    v = await s.latest().access()
    print(f"put {p.version} read {str(v)}")


asyncio.get_event_loop().run_until_complete(main())
