"""Command line of the simulated loggers: `python -m devices --help`."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
from collections.abc import Sequence

from devices.credentials import read_credentials
from devices.fleet import Fleet, logger_ids, run_until_signalled
from devices.logger import DEFAULT_BUFFER_MAX, Broker
from devices.scenarios import SCENARIOS, Scenario

DEFAULT_ACK_TIMEOUT_S = 30.0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of `python -m devices`."""
    parser = argparse.ArgumentParser(
        prog="python -m devices",
        description="Run simulated cold-chain temperature loggers that publish over MQTT.",
    )
    parser.add_argument(
        "--broker",
        default="mqtt://127.0.0.1:1883",
        help="mqtt://[user:pass@]host:port or mqtts://... (default: %(default)s)",
    )
    parser.add_argument(
        "--ca-file",
        default=None,
        help="mqtts:// only: CA certificates (PEM) of the broker (default: the system's CAs)",
    )
    parser.add_argument(
        "--credentials",
        default=None,
        metavar="FILE",
        help="per-logger passwords: lines 'LOGGER_ID PASSWORD' or a JSON object; each logger "
        "then connects as itself, whatever user --broker names (default: none)",
    )
    parser.add_argument(
        "--mqtt-version",
        choices=("5", "3.1.1"),
        default="5",
        help="MQTT protocol version (default: %(default)s)",
    )
    parser.add_argument(
        "--loggers",
        default="1",
        help="N loggers (PREFIX-001..) or a comma list of ids (default: %(default)s)",
    )
    parser.add_argument(
        "--prefix", default="SIM", help="id prefix when --loggers is a count (default: %(default)s)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=10.0,
        help="seconds between readings (default: %(default)s)",
    )
    parser.add_argument(
        "--scenario", choices=SCENARIOS, default="nominal", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="stop after S seconds (default: on a signal)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the temperature noise (default: %(default)s)"
    )
    parser.add_argument(
        "--ack-timeout-s",
        type=float,
        default=None,
        help=f"resend unacked readings after S seconds; 0 disables buffering "
        f"(default: {DEFAULT_ACK_TIMEOUT_S:g}, 0 for the load scenario)",
    )
    parser.add_argument(
        "--buffer-max",
        type=int,
        default=DEFAULT_BUFFER_MAX,
        help="most unacked readings kept (default: %(default)s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    group = parser.add_argument_group("scenario options")
    group.add_argument(
        "--silence-s",
        type=float,
        default=60.0,
        help="signal-loss: seconds of silence at start (default: %(default)s)",
    )
    group.add_argument(
        "--backfill-s",
        type=float,
        default=1200.0,
        help="signal-loss: how far before the start the backfill reaches (default: %(default)s)",
    )
    group.add_argument(
        "--warmup-after-s",
        type=float,
        default=60.0,
        help="excursion: seconds into each hour the warm-up starts (default: %(default)s)",
    )
    group.add_argument(
        "--warmup-s",
        type=float,
        default=300.0,
        help="excursion: seconds the warm-up lasts (default: %(default)s)",
    )
    group.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="load: messages/s per logger, 0 = as fast as possible (default: %(default)s)",
    )
    group.add_argument(
        "--count", type=int, default=1000, help="load: messages per logger (default: %(default)s)"
    )
    group.add_argument(
        "--pack-size",
        type=int,
        default=1,
        help="load, dry-shipper backlog: readings per message (default: %(default)s)",
    )
    group.add_argument(
        "--rated-hold-h",
        type=float,
        default=240.0,
        help="dry-shipper: rated static hold time, hours (default: %(default)s)",
    )
    group.add_argument(
        "--charged-h-ago",
        type=float,
        default=230.0,
        help="dry-shipper: hours before the start it was charged (default: %(default)s)",
    )
    group.add_argument(
        "--charge-fraction",
        type=float,
        default=1.0,
        help="dry-shipper: its LN2 charge over the rated one (default: %(default)s)",
    )
    group.add_argument(
        "--heat-leak-factor",
        type=float,
        default=1.0,
        help="dry-shipper: its heat leak over the rated one (default: %(default)s)",
    )
    group.add_argument(
        "--accel",
        type=float,
        default=0.0,
        help="dry-shipper: replay the --backfill-s backlog this many times faster than "
        "real time; 0 = as one pack at the start (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulated fleet; return 0 on a clean stop."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        broker = dataclasses.replace(
            Broker.from_url(args.broker), mqtt_version=args.mqtt_version, ca_file=args.ca_file
        )
        ids = logger_ids(args.loggers, args.prefix)
        credentials = read_credentials(args.credentials) if args.credentials else None
        scenario = Scenario(
            name=args.scenario,
            interval_s=args.interval,
            seed=args.seed,
            silence_s=args.silence_s,
            backfill_s=args.backfill_s,
            warmup_after_s=args.warmup_after_s,
            warmup_s=args.warmup_s,
            rate=args.rate,
            count=args.count,
            pack_size=args.pack_size,
            rated_hold_h=args.rated_hold_h,
            charged_h_ago=args.charged_h_ago,
            charge_fraction=args.charge_fraction,
            heat_leak_factor=args.heat_leak_factor,
            accel=args.accel,
        )
    except ValueError as exc:
        parser.error(str(exc))
    ack_timeout_s = args.ack_timeout_s
    if ack_timeout_s is None:
        # Buffering every reading for resend would measure the simulator, not the backend.
        ack_timeout_s = 0.0 if args.scenario == "load" else DEFAULT_ACK_TIMEOUT_S
    if ack_timeout_s < 0 or args.buffer_max < 1:
        parser.error("--ack-timeout-s must be >= 0 and --buffer-max >= 1")
    if args.duration is not None and args.duration < 0:
        parser.error("--duration must be >= 0")

    lock = threading.Lock()

    def out(line: str) -> None:
        with lock:
            print(line, flush=True)

    try:
        fleet = Fleet(
            ids,
            broker,
            scenario,
            ack_timeout_s=ack_timeout_s,
            buffer_max=args.buffer_max,
            out=out,
            credentials=credentials,
        )
    except ValueError as exc:
        parser.error(str(exc))
    return 0 if run_until_signalled(fleet, args.duration) else 1


if __name__ == "__main__":
    sys.exit(main())
