"""A small closed-loop HTTPS load generator: processes × threads, each on a keep-alive connection.

Every client thread holds its own TLS connection (with or without a client certificate, its
own when `context_args` is a function of the client's index) and sends the next request as
soon as the previous answer is read, or after a random think time drawn from `think`
(seconds, low and high) as a person at a browser would.
"""

from __future__ import annotations

import contextlib
import http.client
import multiprocessing
import random
import ssl
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

Request = tuple[str, str, bytes | None, dict[str, str]]  # method, path, body, headers


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    def __add__(self, other: Result) -> Result:
        return Result(requests=self.requests + other.requests, errors=self.errors + other.errors,
                      seconds=self.seconds + other.seconds, latencies=self.latencies + other.latencies)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies) * 1000

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def tls_context(ca_file: str, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if cert:
        context.load_cert_chain(cert, key)
    return context


def _client(host, port, context_args, make_request, index, deadline, think, out, lock) -> None:
    context = tls_context(*(context_args(index) if callable(context_args) else context_args))
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=30)
    latencies, errors, n = [], 0, 0
    pause = random.Random(index)
    with contextlib.suppress(OSError):  # if it failed, the first request counts the error
        connection.connect()  # the TLS handshake is not a request's latency: a browser keeps its connection
    if think:
        time.sleep(pause.uniform(0, think[1]))  # the users do not all arrive at the same instant
    while time.perf_counter() < deadline:
        method, path, body, headers = make_request(index, n)
        n += 1
        started = time.perf_counter()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status >= 400 or (response.status >= 300 and method == "GET"):
                errors += 1
            else:
                latencies.append(time.perf_counter() - started)
            if response.getheader("connection", "").lower() == "close":
                connection.close()
        except (OSError, http.client.HTTPException):
            errors += 1
            connection.close()
        if think:
            time.sleep(pause.uniform(*think))
    connection.close()
    with lock:
        out.append((latencies, errors))


def _process(host, port, context_args, make_request, first_index, threads, deadline, think, queue) -> None:
    out, lock = [], threading.Lock()
    workers = [
        threading.Thread(target=_client, args=(host, port, context_args, make_request, first_index + i, deadline,
                                                think, out, lock))
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put(out)


def run(
    *, host: str, port: int, context_args: tuple | Callable[[int], tuple], make_request: Callable[[int, int], Request],
    clients: int, seconds: float, processes: int = 1, think: tuple[float, float] | None = None,
) -> Result:
    """`clients` concurrent clients for `seconds`, spread over `processes` processes."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    per_process = max(1, clients // processes)
    started = time.perf_counter()
    deadline = started + seconds
    procs = [
        multiprocessing.Process(
            target=_process, args=(host, port, context_args, make_request, p * per_process, per_process, deadline,
                                   think, queue)
        )
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    collected = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - started
    latencies = [value for chunk in collected for lat, _ in chunk for value in lat]
    errors = sum(err for chunk in collected for _, err in chunk)
    return Result(requests=len(latencies), errors=errors, seconds=elapsed, latencies=latencies)


def form(fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
