"""``zquant-tushare-server``: run the local Tushare-compatible server, or print its truth.

    zquant-tushare-server --port 0                     # serve; prints the URL it listens on
    zquant-tushare-server serve --fault-rate 0.3 --calls-per-minute 300 --log requests.jsonl
    zquant-tushare-server serve --fault-rate 0.2 --fault-kinds missing_column,extra_column,empty
    zquant-tushare-server truth --api daily --start 20240102 --end 20240131 > truth.csv
"""

from __future__ import annotations

import argparse
import sys

from .dataset import SUPPORTED_APIS, Dataset
from .faults import ALL_FAULT_KINDS, DATA_FAULT_KINDS, FAULT_KINDS, FaultPlan
from .server import LOCAL_TOKEN, LocalTushareServer


def _pairs(text: str | None, what: str) -> dict[str, int]:
    """'daily=500,adj_factor=300' -> {'daily': 500, 'adj_factor': 300}"""
    out: dict[str, int] = {}
    for part in filter(None, (text or "").split(",")):
        name, _, value = part.partition("=")
        if not value.isdigit():
            raise SystemExit(f"{what}: expected API=NUMBER pairs separated by commas, got {part!r}")
        out[name.strip()] = int(value)
    return out


def _dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--extra-stocks", type=int, default=0,
                        help="synthetic listed stocks added to the real 5,456 (e.g. 700 for a >6,000 universe)")
    parser.add_argument("--as-of", help="the server's today, YYYYMMDD (default: today in Shanghai after 16:00)")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("serve", "truth"):
        argv.insert(0, "serve")
    parser = argparse.ArgumentParser(prog="zquant-tushare-server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the Tushare Pro protocol on 127.0.0.1")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7700, help="0 picks a free port")
    serve.add_argument("--token", default=LOCAL_TOKEN, help=f"the token clients must send (default {LOCAL_TOKEN})")
    serve.add_argument("--calls-per-minute", type=int, help="per-API quota; none by default")
    serve.add_argument("--api-calls-per-minute", help="per-API overrides, e.g. daily=500,income=100")
    serve.add_argument("--window-seconds", type=float, default=60.0, help="quota window (60 at Tushare)")
    serve.add_argument("--fault-rate", type=float, default=0.0, help="share of data requests that fail, 0..1")
    serve.add_argument("--fault-seed", type=int, default=0)
    serve.add_argument("--fault-kinds", default=",".join(FAULT_KINDS),
                       help=f"subset of {','.join(ALL_FAULT_KINDS)} (default {','.join(FAULT_KINDS)}; the data "
                            f"faults {','.join(DATA_FAULT_KINDS)} send a successful reply with wrong content)")
    serve.add_argument("--slow-seconds", type=float, default=5.0, help="delay of a 'slow' fault")
    serve.add_argument("--failing-stocks", default="",
                       help="stocks whose calls always fail (server error), comma separated")
    serve.add_argument("--row-limit", help="per-call row limits, e.g. daily=2000")
    serve.add_argument("--deny", default="", help="APIs answered with 'no permission', comma separated")
    serve.add_argument("--reply-cache-mb", type=int, default=0,
                       help="keep rendered replies in memory up to this size, for benchmarks (POST /_admin/warm)")
    serve.add_argument("--log", help="append one JSON line per request here (the token is never logged)")
    _dataset_options(serve)

    truth = sub.add_parser("truth", help="print every row the server holds for an API and date range (CSV)")
    truth.add_argument("--api", required=True, choices=SUPPORTED_APIS)
    truth.add_argument("--start", required=True, help="YYYYMMDD")
    truth.add_argument("--end", required=True, help="YYYYMMDD")
    _dataset_options(truth)

    args = parser.parse_args(argv)
    dataset = Dataset(extra_stocks=args.extra_stocks, as_of=args.as_of)
    if args.command == "truth":
        dataset.truth(args.api, args.start, args.end).to_csv(sys.stdout, index=False)
        return
    try:
        faults = FaultPlan(rate=args.fault_rate, seed=args.fault_seed,
                           kinds=tuple(filter(None, args.fault_kinds.split(","))), slow_seconds=args.slow_seconds,
                           failing_stocks=tuple(filter(None, args.failing_stocks.split(","))))
    except ValueError as exc:
        raise SystemExit(f"zquant-tushare-server: {exc}") from None
    server = LocalTushareServer(
        host=args.host, port=args.port, token=args.token, calls_per_minute=args.calls_per_minute,
        api_calls_per_minute=_pairs(args.api_calls_per_minute, "--api-calls-per-minute"),
        window_seconds=args.window_seconds, faults=faults, row_limits=_pairs(args.row_limit, "--row-limit"),
        denied_apis=tuple(filter(None, args.deny.split(","))), log_path=args.log, dataset=dataset,
        reply_cache_mb=args.reply_cache_mb,
    )
    print(f"zquant-tushare-server listening on {server.url} (as of {dataset.as_of})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
