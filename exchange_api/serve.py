"""Run the exchange API in one or several processes: ``python -m exchange_api.serve [--workers N]``.

Several processes each bind their own listening socket with ``SO_REUSEPORT``, so the kernel spreads
connections over them evenly. (uvicorn's ``--workers`` shares one socket: whichever process wakes
first accepts, and with a few long-lived keep-alive connections one worker may get all of them
while the other idles: measured here, 8 benchmark connections all landed on one of two workers.)
The processes share the metadata database (nonces, quotas, the audit chain) and the keys folder.
"""

from __future__ import annotations

import argparse
import faulthandler
import multiprocessing as mp
import os
import signal
import socket
import sys


def _socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _run_one(host: str, port: int, log_level: str) -> None:
    # A fatal signal (SIGBUS from a memory-mapped serving file truncated under us) can't be caught:
    # faulthandler at least writes every thread's traceback to stderr, so the log says why the process died.
    faulthandler.enable()
    import uvicorn

    from exchange_api.app import create_app

    sock = _socket(host, port)
    config = uvicorn.Config(create_app(), log_level=log_level, access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def serve(host: str, port: int, workers: int = 1, log_level: str = "warning") -> None:
    """Serve until interrupted; with ``workers`` > 1, one process per worker behind SO_REUSEPORT."""
    if workers <= 1:
        _run_one(host, port, log_level)
        return
    context = mp.get_context("spawn")  # a fresh interpreter each: nothing (engines, threads) copied by fork
    children = [context.Process(target=_run_one, args=(host, port, log_level), daemon=False) for _ in range(workers)]
    for child in children:
        child.start()

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)  # type: ignore[arg-type]

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()


def main(argv: list[str] | None = None) -> None:
    from hub.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=settings.api_host)
    parser.add_argument("--port", type=int, default=settings.api_port)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.workers, args.log_level)


if __name__ == "__main__":
    main(sys.argv[1:])
