"""A free TCP port on 127.0.0.1 for a test's process group (a fixed port collides with any other job on the machine)."""

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
