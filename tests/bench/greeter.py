"""The backend of the benchmark's forwarding section: a greeting server.

It listens on 127.0.0.1, on the port given (0: any), prints the port on a
line of its own, and for each connection writes one greeting line at once,
then reads and drops what the client sends until the client closes, and
closes too. One asyncio loop, one thread: the same backend for every case.
"""

import asyncio
import sys

GREETING = b"hello from the backend\r\n"


async def serve(reader, writer):
    writer.write(GREETING)
    try:
        await writer.drain()
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass
    writer.close()


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
