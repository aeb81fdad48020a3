"""Is a local service listening? (No Django here: bench/ uses it before configuring Django.)"""

import os
import socket


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def uses_postgresql() -> bool:
    """Does this run's DATABASE_URL name PostgreSQL (else the embedded SQLite)?"""
    return os.environ.get("DATABASE_URL", "").startswith("postgres")
