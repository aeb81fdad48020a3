"""Is a local service listening? (No Django here: bench/ uses it before configuring Django.)"""

import socket


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
