"""One python-socketio client in a vault, as a child process of another suite (the Node
rolling-restart test runs several beside socket.io-client ones). It connects with the given
cookie, joins, rejoins with `since` after every reconnection (VaultClient), and prints JSON
lines on stdout: {"joined": latestSeq} after the first join, then {"report": {...}} (what it
delivered, when it was away) for each line "report" on stdin. It exits when stdin ends.

Usage: vault_client.py URL COOKIE VAULT_ID [polling]"""
import json
import sys
import time

from syncscript import VaultClient


def report(client):
    with client.cond:
        # Each time away: from a disconnect to the next join the server acknowledged.
        joined_at = [t for t, ack in client.join_times if ack.get("ok")]
        away = []
        for at, _ in client.disconnects:
            back = next((t for t in joined_at if t > at), None)
            away.append(None if back is None else (back - at) * 1000)
        return {
            "delivered": client.delivered,
            "duplicates": client.duplicates,
            "connected": client.sio.connected,
            "connects": client.connects,
            "disconnects": [{"at": wall(at), "reason": str(reason)} for at, reason in client.disconnects],
            "away": away,  # milliseconds
            "joinTimes": [wall(t) for t in joined_at],
            "refusedJoins": [ack for ack in client.acks if not ack.get("ok")],
            "transport": client.sio.transport() if client.sio.connected else None,
        }


def wall(monotonic_at):
    """A monotonic instant as Unix milliseconds, comparable with the parent's clock."""
    return (time.time() - (time.monotonic() - monotonic_at)) * 1000


def main():
    url, cookie, vault_id = sys.argv[1:4]
    transports = ["polling"] if sys.argv[4:] == ["polling"] else None
    client = VaultClient(url, cookie, vault_id, transports=transports).connect()
    print(json.dumps({"joined": client.acks[0].get("latestSeq")}), flush=True)
    for line in sys.stdin:
        if line.strip() == "report":
            print(json.dumps({"report": report(client)}), flush=True)
    client.close()


if __name__ == "__main__":
    main()
