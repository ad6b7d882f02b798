"""What the python-socketio suite shares: the real `syncscript` binary run as a child process
on a free port (a temp SQLite file and the demo seed, or a PostgreSQL URL), REST calls with a
session cookie, and a python-socketio client written the way an app would write one."""
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import requests
import socketio

REPO_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "demo-password"
DEMO = {
    "owner": "owner@demo.com",
    "contributor": "contributor@demo.com",
    "viewer": "viewer@demo.com",
    "outsider": "outsider@demo.com",
}
COOKIE_NAME = "syncscript.session-token"


def binary_path():
    path = REPO_ROOT / os.environ.get("SYNCSCRIPT_BIN", "target/debug/syncscript")
    if not path.exists():
        raise RuntimeError(f"server binary not found at {path} (cargo build --bin syncscript, or set SYNCSCRIPT_BIN)")
    return path


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check, timeout=10.0, what="condition"):
    """Polls `check` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.025)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


class Server:
    """One `syncscript` process. `start()` may be called again after it stopped: same port,
    same database, so a restart looks to clients like the node coming back."""

    def __init__(self, database_url=None, port=None, env=None, name="server"):
        self.dir = Path(tempfile.mkdtemp(prefix=f"syncscript-py-{name}-"))
        self.database_url = database_url or f"sqlite://{self.dir}/test.db?mode=rwc"
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.log_path = self.dir / "server.log"
        self.proc = None
        self.starts = 0

    def env(self):
        env = {k: v for k, v in os.environ.items() if k != "SYNCSCRIPT_BIN"}
        env.update(
            SYNCSCRIPT_SERVER__HOST="127.0.0.1",
            SYNCSCRIPT_SERVER__PORT=str(self.port),
            SYNCSCRIPT_DATABASE__URL=self.database_url,
            SYNCSCRIPT_DEMO__SEED="true",
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout=30.0):
        self.starts += 1
        with open(self.log_path, "a") as log:
            log.write(f"\n----- start #{self.starts} -----\n")
            log.flush()
            self.proc = subprocess.Popen(
                [binary_path()], cwd=REPO_ROOT, env=self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited at start-up ({self.proc.returncode}):\n{self.log_tail()}")
            if self.ready_status() == 200:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"server not ready within {timeout} s:\n{self.log_tail()}")

    def ready_status(self):
        try:
            return requests.get(f"{self.base_url}/readyz", timeout=10).status_code
        except requests.RequestException:
            return None

    def terminate(self, timeout=60.0):
        """SIGTERM, as at a deploy; returns the exit code once the process is gone."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


class Rest:
    """REST calls as one signed-in user (the cookie pair kept as a header, as a client sends it)."""

    def __init__(self, base_url, email, password=PASSWORD):
        self.base_url = base_url
        res = requests.post(f"{base_url}/api/auth/login", json={"email": email, "password": password}, timeout=10)
        assert res.status_code == 200, f"login {email}: {res.status_code} {res.text}"
        self.cookie = f"{COOKIE_NAME}={res.cookies[COOKIE_NAME]}"
        self.user = res.json()["user"]

    def call(self, method, route, body=None, expect=None, base_url=None):
        res = requests.request(
            method, f"{base_url or self.base_url}{route}", json=body, headers={"Cookie": self.cookie}, timeout=10
        )
        if expect is not None:
            assert res.status_code == expect, f"{method} {route}: expected {expect}, got {res.status_code} {res.text}"
        return res

    def demo_vault(self):
        vaults = self.call("GET", "/api/vaults", expect=200).json()["vaults"]
        return next(v["id"] for v in vaults if v["name"] == "Demo Vault")

    def add_source(self, vault_id, title, base_url=None):
        body = {"title": title, "fileUrl": "https://example.com/doc.pdf"}
        res = self.call("POST", f"/api/vaults/{vault_id}/sources", body, expect=201, base_url=base_url)
        return res.json()["source"]

    def latest_seq(self, vault_id):
        return self.call("GET", f"/api/vaults/{vault_id}/events?since=0&limit=1", expect=200).json()["latestSeq"]


EVENTS = ("source:created", "source:updated", "source:deleted", "member:added", "member:updated",
          "member:removed", "vault:updated", "vault:deleted")


class VaultClient:
    """A python-socketio client in one vault, as an app writes it: on every `connect` it joins
    the vault with `since` = the last seq it has, and it drops a seq it already has. Everything
    it hears is recorded (under one lock) for the test to wait on."""

    def __init__(self, base_url, cookie, vault_id, transports=None, **client_options):
        self.base_url = base_url
        self.cookie = cookie
        self.vault_id = vault_id
        self.transports = transports
        self.have = None  # the last seq delivered; None until the first join says where to start
        self.delivered = []  # seqs in delivery order, each once
        self.heard = []  # (event name, payload) for everything the server sent, in order
        self.acks = []
        self.join_times = []  # (monotonic time, ack) of every join's ack
        self.duplicates = 0  # events whose seq the client already had
        self.connects = 0
        self.disconnects = []  # (monotonic time, reason)
        self.cond = threading.Condition()
        # The cookie goes in the HTTP session's jar, not in `headers`: python-engineio sends
        # `headers` with the handshake only, and a balancer that hashes the session cookie
        # (README) would send the long-polling requests that follow to any node.
        http = requests.Session()
        name, _, value = cookie.partition("=")
        http.cookies.set(name, value)
        self.sio = socketio.Client(http_session=http, **client_options)
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("*", self._on_any)

    def connect(self, since=None, wait=True):
        self.have = since
        self.sio.connect(self.base_url, transports=self.transports, wait_timeout=10)
        if wait:
            self.wait(lambda: self.acks, "the first join's ack")
        return self

    def close(self):
        self.sio.disconnect()

    # The app's own code: rejoin on every connect (python-socketio fires `connect` again after
    # each reconnection). An ack arrives on the client's read loop, so the join is not awaited.
    def _on_connect(self):
        with self.cond:
            self.connects += 1
        self._join()

    def _join(self):
        with self.cond:
            payload = {"vaultId": self.vault_id} if self.have is None else {"vaultId": self.vault_id, "since": self.have}
        self.sio.emit("vault:join", payload, callback=self._on_join_ack)

    def _on_join_ack(self, ack):
        with self.cond:
            self.acks.append(ack)
            self.join_times.append((time.monotonic(), ack))
            if ack.get("ok") and self.have is None:
                self.have = ack["latestSeq"]
            self.heard.append(("ack", ack))
            self.cond.notify_all()
        # A server that cannot answer now (CONTRACT §7) is asked again after a random delay.
        if not ack.get("ok") and ack.get("error", {}).get("code") == "UNAVAILABLE":
            retry = threading.Timer(random.uniform(0.2, 1.0), lambda: self.sio.connected and self._join())
            retry.daemon = True
            retry.start()

    def _on_disconnect(self, reason=None):
        with self.cond:
            self.disconnects.append((time.monotonic(), reason))
            self.cond.notify_all()

    def _on_any(self, event, payload=None):
        with self.cond:
            self.heard.append((event, payload))
            if event in EVENTS and isinstance(payload, dict) and "seq" in payload:
                if self.have is None or payload["seq"] > self.have:
                    self.have = payload["seq"]
                    self.delivered.append(payload["seq"])
                else:
                    self.duplicates += 1
            self.cond.notify_all()

    def wait(self, check, what, timeout=15.0):
        """Waits until `check()` (called under the lock) is truthy; returns its value."""
        with self.cond:
            if not self.cond.wait_for(check, timeout=timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; heard {self.heard[-20:]!r}")
            return check()

    def heard_named(self, name):
        with self.cond:
            return [payload for event, payload in self.heard if event == name]
