# The common SDK scenario (issue 13, acceptance 1) with the Python SDK (PyPI nitric 1.2.4,
# grpclib over h2), the documentation's workflow: put twice, latest, a version by id, binary,
# UTF-8, NotFound, PermissionDenied, a value over the limit. Error classes by name.
import asyncio

from nitric.resources import secret

# Nitric's documentation prints allow("accessing", "putting"); 1.2.4 takes "access" and "put"
# (see docs/sdks.md for what the printed form does with this release).
api_key = secret("api-key-py").allow("access", "put")
blob = secret("blob-py").allow("access", "put")
read_only = secret("read-only-py").allow("access")


async def err_name(coro):
    try:
        await coro
        return "no error"
    except Exception as e:  # the SDK's own exception classes
        return type(e).__name__


async def main():
    first = await api_key.put("a new secret value")
    second = await api_key.put("the second value")
    print(f"versions {first.version} {second.version}")
    latest = await api_key.latest().access()
    print(f"latest {latest.version.version} {str(latest)}")
    specific = await api_key.version(first.version).access()
    print(f"first {bytes(specific).decode()}")
    b = await blob.put(b"\x00\xff\x00A\x00")
    print(f"binary {bytes(await b.access()).hex()}")
    u = await api_key.put("grüße ✓ 秘密")
    print(f"utf8 {str(await u.access())}")
    print(f"missing {await err_name(api_key.version('999').access())}")
    print(f"put on access-only {await err_name(read_only.put('nope'))}")
    print(f"too big {await err_name(api_key.put('x' * 70000))}")


# The loop the SDK declared its resources on (and connected its channel in): asyncio.run() would
# start another loop, where grpclib's connection from the first never answers.
asyncio.get_event_loop().run_until_complete(main())
