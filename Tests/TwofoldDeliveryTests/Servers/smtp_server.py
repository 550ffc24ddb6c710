"""A real SMTP server for the delivery tests: aiosmtpd's Mailbox handler (every message into the
Maildir given as the first argument) on 127.0.0.1, on a port the kernel picks (bound here, port 0).
Prints the port on a line of its own once it accepts connections; runs until killed."""
import asyncio
import socket
import sys

from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP


async def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    handler = Mailbox(sys.argv[1])
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(handler), sock=listener)
    print(listener.getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())
