# The Python SDK under load: a program declaring 150 secrets at start-up, then 1,000 concurrent
# puts and 1,000 concurrent accesses, then 3,000 puts with 5 in flight. Prints the counts, with
# error classes by name.
import asyncio
import collections

from nitric.resources import secret

declared = [secret(f"py-s-{i}").allow("put", "access") for i in range(150)]
s = secret("burst-py").allow("put", "access")


def failures(results):
    return dict(collections.Counter(type(r).__name__ for r in results if isinstance(r, Exception)))


async def main():
    await declared[149].put("last")
    print(f"declared 150 {str(await declared[149].latest().access())}")
    rs = await asyncio.gather(*[s.put(f"v-{i}") for i in range(1000)], return_exceptions=True)
    print(f"burst put failed {failures(rs)}")
    rs = await asyncio.gather(*[s.latest().access() for _ in range(1000)], return_exceptions=True)
    print(f"burst access failed {failures(rs)}")
    sem = asyncio.Semaphore(5)

    async def one(i):
        async with sem:
            return await s.put(f"s-{i}")

    rs = await asyncio.gather(*[one(i) for i in range(3000)], return_exceptions=True)
    print(f"sustained put failed {failures(rs)}")


asyncio.get_event_loop().run_until_complete(main())
