"""Free local ports for tests that start a real Airflow."""

import socket


def free_port() -> int:
    """A port whose two neighbours (the log servers) are free too."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("localhost", 0))
            port = probe.getsockname()[1]
        if port < 60000 and all(is_free(port + i) for i in (1, 2)):
            return port
    raise RuntimeError("no free port")


def is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("localhost", port)) != 0
