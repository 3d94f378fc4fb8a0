"""An embedded MQTT broker (amqtt) for `coldchain demo` on a machine without Mosquitto.

`python -m coldchain.embedded_broker --port N` serves MQTT 3.1.1 on 127.0.0.1:N until SIGTERM
or Ctrl-C. amqtt speaks neither MQTT 5 nor shared subscriptions, so the demo runs the worker
and the simulated loggers on 3.1.1 with it. It is for trying coldchain out, not for
production: use Mosquitto there.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

log = logging.getLogger("coldchain.embedded_broker")


def broker_config(port: int) -> dict[str, object]:
    """The amqtt configuration: one loopback listener, anonymous clients, no $SYS topics."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "sys_interval": 0,
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


async def serve(port: int) -> None:
    """Run the broker until SIGTERM or SIGINT."""
    from amqtt.broker import Broker

    broker = Broker(broker_config(port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await broker.start()
    log.info("embedded MQTT 3.1.1 broker listening on 127.0.0.1:%d", port)
    await stop.wait()
    await broker.shutdown()
    log.info("embedded broker stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: --port N."""
    parser = argparse.ArgumentParser(prog="python -m coldchain.embedded_broker")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        import amqtt  # noqa: F401
    except ImportError:
        log.error("the embedded broker needs amqtt: pip install 'coldchain[demo]'")
        return 2
    asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
