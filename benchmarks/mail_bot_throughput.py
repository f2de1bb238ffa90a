"""Mail order bot throughput on a real Dovecot: PLBA (3 workers) against the previous generation's loop.

Run with `nox -s bench_mail` (or `python benchmarks/mail_bot_throughput.py [--mails N] [--quick]`).
Needs `dovecot` (apt-get install dovecot-imapd). Both variants process the same kind of order mails
from their own folder of a throwaway Dovecot, into their own SQLite file, with the same processing
code. Each order gets `--io-ms` (20 ms by default) of simulated I/O, as a real order would spend
talking to an ERP or payment system; it is a benchmark setting wrapped around the processing call,
not a product setting.

- previous generation: one loop that fetches, processes and marks each message in turn;
- plba: `create_runtime` with the mail_order_bot plugin, IMAP polling, `workers = 3`.

Prints orders per second for both and the ratio (goal: at least 2.5x); exits 1 below the goal.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import mail_order_bot.plugin as plugin
from mail_order_bot.catalogue import load_catalogue
from mail_order_bot.config import BotConfig
from mail_order_bot.imap import ImapMailbox
from mail_order_bot.mailboxes import ImapSettings
from mail_order_bot.processing import OrderProcessor
from mail_order_bot.store import OrderStore

from plba import create_runtime

# The throwaway Dovecot and the order-mail builder are the plugin's test helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "mail_order_bot" / "tests"))
from dovecot import PASSWORD, USER, Dovecot  # noqa: E402
from mailkit import order_mail  # noqa: E402

WORKERS = 3
GOAL = 2.5


def with_io(process: Callable[[str], str], seconds: float) -> Callable[[str], str]:
    """`process` plus `seconds` of simulated I/O per order (an Event wait releases the GIL like real I/O)."""
    never = threading.Event()

    def process_with_io(key: str) -> str:
        never.wait(seconds)
        return process(key)

    return process_with_io


def fill(server: Dovecot, folder: str, count: int) -> None:
    """Create `folder` holding `count` unseen order mails with distinct Message-IDs."""
    with server.connect() as box:
        box.folder.create(folder)
        for n in range(count):
            lines = [("WID-001", n % 9 + 1), ("GAD-100", 1)] if n % 2 else [("LAMP-01", 2)]
            box.append(order_mail(lines, kind="xlsx" if n % 10 == 0 else "csv",
                                  message_id=f"<bench-{folder}-{n}@shop.example>"), folder, flag_set=())


def imap_settings(server: Dovecot, folder: str) -> ImapSettings:
    """Plaintext IMAP settings for one folder of the throwaway server."""
    return replace(BotConfig.from_settings().imap, host="127.0.0.1", port=server.port, ssl=False, user=USER,
                   password=PASSWORD, folder=folder, rejects_folder=f"{folder}_rejected")


def previous_generation(server: Dovecot, folder: str, database: Path, count: int, io: float) -> float:
    """Seconds for one loop to fetch, process and mark every message in turn."""
    client = ImapMailbox(imap_settings(server, folder))
    processor = OrderProcessor(lambda: client, OrderStore(database), load_catalogue())
    process = with_io(processor.process, io)
    started = time.perf_counter()
    client.connect()
    done = 0
    while done < count:
        for key in client.unseen():
            process(key)
            done += 1
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def plba_bot(server: Dovecot, folder: str, database: Path, count: int, io: float) -> float:
    """Seconds for the plugin under create_runtime (3 workers, IMAP polling) to store every order."""
    imap = imap_settings(server, folder)
    settings = {
        "platform": {"tracing": {"transport": "noop"}},
        "log": {"level": "WARNING"},
        "mail_order_bot": {
            "source": "imap", "mode": "poll", "poll_interval": 1, "workers": WORKERS, "database": str(database),
            "imap": {"host": imap.host, "port": imap.port, "ssl": False, "user": imap.user,
                     "password": imap.password, "folder": imap.folder, "rejects_folder": imap.rejects_folder},
        },
    }
    runtime = create_runtime(plugin, settings=settings, enable_http_control=False)
    runtime.build()
    bot = runtime.services["mail_order_bot"]
    bot.processor.process = with_io(bot.processor.process, io)
    idle = threading.Event()
    started = time.perf_counter()
    runtime.start()
    # A handler counts as processed once it returned, i.e. after the message was marked seen.
    while bot.workers.status().processed < count:
        idle.wait(0.01)
    elapsed = time.perf_counter() - started
    runtime.close()
    return elapsed


def main() -> None:
    """Fill two folders, run both variants, print rates and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=1000, help="order mails per variant (default 1000)")
    parser.add_argument("--quick", action="store_true", help="200 mails per variant")
    parser.add_argument("--io-ms", type=float, default=20.0, help="simulated I/O per order in ms (default 20)")
    args = parser.parse_args()
    count = 200 if args.quick else args.mails
    io = args.io_ms / 1000
    if shutil.which("dovecot") is None:
        sys.exit("dovecot is not installed (apt-get install dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="mail-bot-bench-"))
    server = Dovecot(root / "dovecot")
    server.start()
    try:
        print(f"appending {count} order mails to each of two folders ...", flush=True)
        fill(server, "previous", count)
        fill(server, "plba", count)
        old = previous_generation(server, "previous", root / "previous.sqlite", count, io)
        new = plba_bot(server, "plba", root / "plba.sqlite", count, io)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    old_rate, new_rate = count / old, count / new
    ratio = new_rate / old_rate
    print(f"{count} order mails on Dovecot, {args.io_ms:g} ms simulated I/O per order")
    print(f"{'variant':44} {'orders/s':>9} {'seconds':>8}")
    print(f"{'previous generation (one loop)':44} {old_rate:9.1f} {old:8.2f}")
    print(f"{f'plba mail_order_bot ({WORKERS} workers)':44} {new_rate:9.1f} {new:8.2f}")
    print(f"ratio {ratio:.2f}x (goal >= {GOAL}x): {'met' if ratio >= GOAL else 'NOT met'}")
    sys.exit(0 if ratio >= GOAL else 1)


if __name__ == "__main__":
    main()
