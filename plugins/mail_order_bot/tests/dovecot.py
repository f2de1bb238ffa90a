"""A throwaway Dovecot for tests and benchmarks: plaintext IMAP on loopback, one user, mail in a temp dir."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from imap_tools import MailBoxUnencrypted
from plba.testing import wait_until

USER, PASSWORD = "orders", "s3cret-Pa55"

DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = nobody
default_internal_group = nogroup
default_login_user = nobody
mail_location = maildir:{root}/mail/%u
first_valid_uid = 0
mail_fsync = never
login_trusted_networks = 127.0.0.0/8
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 1000
}}
"""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dovecot:
    """A throwaway Dovecot serving plaintext IMAP on loopback, with one user."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        running_as_root = os.geteuid() == 0
        # As root, Dovecot refuses to deliver mail as root: mail runs as nobody, who must reach the files.
        uid, gid = ("nobody", "nogroup") if running_as_root else (os.getuid(), os.getgid())
        (root / "mail").mkdir(parents=True)
        (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        self.config = root / "dovecot.conf"
        self.config.write_text(DOVECOT_CONF.format(root=root, port=self.port, uid=uid, gid=gid))
        if running_as_root:
            shutil.chown(root / "mail", "nobody", "nogroup")
            for parent in [root, *root.parents]:
                parent.chmod(parent.stat().st_mode | 0o001)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self.process = subprocess.Popen(["dovecot", "-F", "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(self._accepts, timeout=15, message=f"dovecot on port {self.port}")

    def stop(self) -> None:
        """Stop the server (SIGTERM) and its session processes, and wait for them to exit."""
        if self.process is not None and self.process.poll() is None:
            # Running imap sessions can outlive the master for a while; a real restart drops them.
            sessions = _children(self.process.pid)
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)
            for pid in sessions:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        self.process = None
        wait_until(lambda: not self._accepts(), timeout=10, message="dovecot to stop listening")

    def kick(self) -> None:
        """Drop every connection of the test user, as a server restart or network blip would."""
        subprocess.run(["doveadm", "-c", str(self.config), "kick", USER], check=True, capture_output=True)

    def connect(self) -> MailBoxUnencrypted:
        """A logged-in imap-tools client for setting up and checking tests."""
        return MailBoxUnencrypted("127.0.0.1", self.port, timeout=10).login(USER, PASSWORD)

    def _accepts(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"dovecot exited: {self.process.stderr.read().decode(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            return True
        return False


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found
