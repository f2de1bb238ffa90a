"""Peak memory (RSS) of `plba run` while the mail order bot rejects oversized and hostile mail.

Run with `nox -s bench_mail_memory` (or `python benchmarks/mail_bot_memory.py`). Each scenario
starts `plba run --no-http` in a fresh directory whose maildir holds the scenario's mail, waits
until every mail has its recorded outcome, and reads the process's peak resident set (VmHWM in
/proc/<pid>/status). The reference is the same run with one small valid order, measured first.

- 50 MB attachment: a 68 MB mail carrying a 50 MB CSV, with the default limits (rejected on its
  size, read no further than its headers);
- 50 MB attachment, mail limit raised to 100 MB: the mail is parsed and the attachment rejected
  on `max_attachment_bytes` (the most a mail within the limits costs);
- decompression bomb: a 1 MB .xlsx whose sheet unpacks to 1 GB.

Prints each peak in MB and its ratio to the reference; exits 1 when a peak exceeds 100 MB.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "mail_order_bot" / "tests"))
from mail_order_bot.mailboxes import MaildirMailbox  # noqa: E402
from mailkit import order_mail, xlsx_bytes  # noqa: E402

CEILING_MB = 100


def big_csv_mail(megabytes: int) -> bytes:
    """A mail with a CSV attachment of `megabytes` MB (a valid header, then many order lines)."""
    line = b"WID-001,1\r\n"
    content = b"sku,quantity\r\n" + line * (megabytes * 1_000_000 // len(line))
    return order_mail(message_id="<big@bench>", attachment=content)


def bomb_mail(unpacked: int) -> bytes:
    """A mail with an .xlsx whose first sheet unpacks to `unpacked` bytes, written without holding them."""
    source = zipfile.ZipFile(io.BytesIO(xlsx_bytes([("WID-001", 1)])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename != "xl/worksheets/sheet1.xml":
                target.writestr(info.filename, source.read(info))
                continue
            with target.open(info.filename, "w", force_zip64=True) as sheet:
                sheet.write(source.read(info))
                padding = b" " * 1_000_000
                for _ in range(unpacked // len(padding)):
                    sheet.write(padding)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "a@b.example", "o@shop.example", "bomb", "<bomb@bench>"
    msg.set_content("order attached\n")
    msg.add_attachment(out.getvalue(), maintype="application", subtype="octet-stream", filename="order.xlsx")
    return bytes(msg)


def peak_rss(mails: list[bytes], outcomes: int, **section: object) -> float:
    """MB of peak RSS of `plba run` until `outcomes` mails are stored or rejected."""
    with tempfile.TemporaryDirectory(prefix="bench-mail-memory-") as tmp:
        root = Path(tmp)
        box = MaildirMailbox(root / "mail")
        box.create()
        for raw in mails:
            box.deliver(raw)
        del mails[:]
        bot = {"maildir": str(root / "mail"), "database": str(root / "orders.sqlite"), "poll_interval": 0.2, **section}
        (root / "settings.toml").write_text(
            "[platform.tracing]\ntransport = \"noop\"\n[mail_order_bot]\n"
            + "".join(f"{key} = {json.dumps(value)}\n" for key, value in bot.items()))
        env = {**os.environ, "PLBA_LOAD_PLUGINS": "mail_order_bot"}
        proc = subprocess.Popen([sys.executable, "-m", "plba", "run", "--no-http"], cwd=root, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while handled(root / "orders.sqlite") < outcomes:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"plba run ended or stalled: {proc.stderr.read().decode(errors='replace')}")
                time.sleep(0.1)
            return vm_hwm(proc.pid) / 1024
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)


def handled(database: Path) -> int:
    """Orders plus rejections recorded so far."""
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(database, timeout=5) as conn:
            sql = "SELECT (SELECT COUNT(*) FROM orders) + (SELECT COUNT(*) FROM rejections)"
            return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def vm_hwm(pid: int) -> int:
    """Peak resident set size of the process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise SystemExit("no VmHWM in /proc: Linux only")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attachment-mb", type=int, default=50)
    parser.add_argument("--bomb-mb", type=int, default=1000)
    args = parser.parse_args()
    reference = peak_rss([order_mail([("WID-001", 1)], message_id="<small@bench>")], 1)
    scenarios = [
        (f"{args.attachment_mb} MB attachment", [big_csv_mail(args.attachment_mb)], {}),
        (f"{args.attachment_mb} MB attachment, max_mail_bytes 100 MB", [big_csv_mail(args.attachment_mb)],
         {"max_mail_bytes": 100_000_000}),
        (f"xlsx bomb unpacking to {args.bomb_mb} MB", [bomb_mail(args.bomb_mb * 1_000_000)], {}),
    ]
    print(f"{'scenario':52} {'peak RSS MB':>11} {'ratio':>6}")
    print(f"{'reference: one small order':52} {reference:11.1f} {1:6.2f}")
    worst = 0.0
    for label, mails, section in scenarios:
        peak = peak_rss(mails, 1, **section)
        worst = max(worst, peak)
        print(f"{label:52} {peak:11.1f} {peak / reference:6.2f}")
    print(f"worst peak {worst:.1f} MB (ceiling {CEILING_MB} MB): {'met' if worst <= CEILING_MB else 'NOT met'}")
    return 0 if worst <= CEILING_MB else 1


if __name__ == "__main__":
    sys.exit(main())
