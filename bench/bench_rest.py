"""Records/s the REST connector pulls from the fake API: ``python bench/bench_rest.py [--n N] [--page-size M]``."""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere in the checkout

from samples.fake_rest import fake_rest_app, make_records, serving  # noqa: E402
from connectors.rest import Paging, RestConnector  # noqa: E402


def _serve(n: int, page_size: int, urls: mp.Queue, stop: mp.Event) -> None:
    # The fake runs in its own process, so its JSON encoding does not share the connector's GIL.
    with serving(fake_rest_app(make_records(n), max_page_size=page_size, token="bench")) as url:
        urls.put(url)
        stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()

    urls: mp.Queue = mp.Queue()
    stop = mp.Event()
    server = mp.Process(target=_serve, args=(args.n, args.page_size, urls, stop), daemon=True)
    server.start()
    url = urls.get(timeout=120)
    try:
        for style, path in (("page", "/items"), ("cursor", "/changes")):
            rest = RestConnector(url, path=path, pagination=Paging(style), key="id", watermark="updated_at",
                                 batch_size=args.page_size, auth="bearer", token="bench", since_param="updated_since")
            next(rest.extract(None).batches)  # warm-up: pyarrow imports pandas on first use
            started = time.perf_counter()
            extraction = rest.extract(None)
            rows = pages = 0
            for batch in extraction.batches:
                rows, pages = rows + batch.num_rows, pages + 1
            elapsed = time.perf_counter() - started
            rest.close()
            assert rows == args.n, (rows, args.n)
            print(f"{style:>6}: {rows:,} records in {pages} pages of {args.page_size} over HTTP on 127.0.0.1: "
                  f"{elapsed:.2f} s, {rows / elapsed:,.0f} records/s")
    finally:
        stop.set()
        server.join(10)


if __name__ == "__main__":
    main()
