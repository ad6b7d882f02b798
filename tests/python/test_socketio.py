"""python-socketio 5 as a client of CONTRACT §7, on its default transports (long-polling,
then the upgrade to WebSocket) unless a test says otherwise, against the real binary."""
import pytest
import socketio

from syncscript import Rest, Server, VaultClient, wait_for


def sources_created(client):
    return [e["seq"] for e in client.heard_named("source:created")]


def test_a_client_that_was_away_gets_what_was_committed_meanwhile_once_and_in_order(server, rest, vault_id, clients):
    viewer = rest["viewer"]
    first = clients(server.base_url, viewer.cookie, vault_id).connect()
    assert first.acks[0]["ok"] is True
    rest["owner"].add_source(vault_id, "seen live")
    first.wait(lambda: len(first.delivered) == 1, "the live event")
    since = first.have
    first.close()

    missed = [rest["owner"].add_source(vault_id, f"missed {i}") for i in range(5)]

    back = clients(server.base_url, viewer.cookie, vault_id).connect(since=since)
    ack = back.acks[0]
    assert ack["ok"] is True and ack["resync"] is False and ack["latestSeq"] == since + 5
    assert back.delivered == list(range(since + 1, since + 6))
    assert [e["source"]["id"] for e in back.heard_named("source:created")] == [s["id"] for s in missed]
    assert sources_created(back) == back.delivered, "no seq replayed twice"
    names = [event for event, _ in back.heard]
    assert names.index("vault:joined") > max(i for i, n in enumerate(names) if n == "source:created")
    assert names.index("ack") > names.index("vault:joined"), names


def test_a_removed_member_is_told_vault_revoked_and_hears_no_more_of_the_vault(server, rest, vault_id, clients):
    contributor = rest["contributor"]
    client = clients(server.base_url, contributor.cookie, vault_id).connect()
    rest["owner"].call("DELETE", f"/api/vaults/{vault_id}/members/{contributor.user['id']}", expect=204)

    revoked = client.wait(lambda: client.heard_named("vault:revoked"), "vault:revoked")
    assert revoked[0]["vaultId"] == vault_id and revoked[0]["reason"]
    # A later event reaches a member who is still in the room, and not the removed one.
    watcher = clients(server.base_url, rest["viewer"].cookie, vault_id).connect()
    after = rest["owner"].add_source(vault_id, "after the removal")
    watcher.wait(lambda: watcher.heard_named("source:created"), "the viewer's event")
    # One round trip on the removed member's socket: what the server sent it before is in.
    assert client.sio.call("vault:leave", vault_id, timeout=10) == {"ok": True}
    assert all(e["source"]["id"] != after["id"] for e in client.heard_named("source:created"))
    assert client.sio.connected, "revocation leaves the socket connected"


def test_logout_sends_session_ended_and_the_client_does_not_reconnect(server, rest, vault_id, clients):
    viewer = rest["viewer"]
    client = clients(server.base_url, viewer.cookie, vault_id).connect()
    viewer.call("POST", "/api/auth/logout", expect=204)

    client.wait(lambda: client.disconnects, "the disconnect")
    ended = client.heard_named("session:ended")
    assert ended == [{"reason": "logout"}], client.heard
    names = [event for event, _ in client.heard]
    assert names[-1] == "session:ended", "session:ended is the last thing the socket hears"
    # python-socketio takes a Socket.IO DISCONNECT from the server as final: no reconnection.
    assert [reason for _, reason in client.disconnects] == [client.sio.reason.SERVER_DISCONNECT]
    assert client.sio.connected is False
    # And were it to try, the ended session could not open a socket again.
    again = VaultClient(server.base_url, viewer.cookie, vault_id, reconnection=False)
    refusals = []
    again.sio.on("connect_error", refusals.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        again.sio.connect(server.base_url, wait_timeout=5)
    assert refusals == [{"message": "UNAUTHORIZED"}]


def test_a_polling_only_client_joins_replays_and_hears_live_events(server, rest, vault_id, clients):
    since = rest["owner"].latest_seq(vault_id)
    rest["owner"].add_source(vault_id, "before the join")
    client = clients(server.base_url, rest["viewer"].cookie, vault_id, transports=["polling"]).connect(since=since)
    assert client.delivered == [since + 1]
    for i in range(3):
        rest["contributor"].add_source(vault_id, f"live {i}")
    client.wait(lambda: len(client.delivered) == 4, "three live events")
    assert client.delivered == list(range(since + 1, since + 5))
    assert client.sio.transport() == "polling"
    assert client.disconnects == []


def test_a_polling_only_client_catches_up_on_more_than_sixteen_missed_events_without_dropping_out(server, rest, vault_id, clients):
    since = rest["owner"].latest_seq(vault_id)
    missed = [rest["owner"].add_source(vault_id, f"missed {i}") for i in range(40)]
    client = clients(server.base_url, rest["viewer"].cookie, vault_id, transports=["polling"]).connect(since=since)
    client.wait(lambda: len(client.delivered) == len(missed), "the 40 missed events")
    assert client.delivered == list(range(since + 1, since + 41))
    # python-engineio drops the connection when one poll answers more than 16 packets.
    assert client.disconnects == []
    assert client.connects == 1


# One socket on the node: the drain closes it at the end of drain_period.
@pytest.mark.parametrize("server", [{"SYNCSCRIPT_SERVER__DRAIN_PERIOD": "1s"}], indirect=True)
def test_after_a_sigterm_restart_the_client_reconnects_by_itself_and_catches_up(server, rest, vault_id, clients):
    client = clients(server.base_url, rest["viewer"].cookie, vault_id).connect()
    wait_for(lambda: client.sio.transport() == "websocket", what="the upgrade to WebSocket")
    owner = rest["owner"]
    owner.add_source(vault_id, "before the restart")
    client.wait(lambda: len(client.delivered) == 1, "the first event")

    assert server.terminate() == 0, "a drained node exits 0"
    client.wait(lambda: client.disconnects, "the disconnect")
    # Closed at the transport: a Socket.IO DISCONNECT would be final for python-socketio.
    assert client.disconnects[0][1] == client.sio.reason.TRANSPORT_ERROR
    # Written while the client cannot be connected: through a stand-in node on another port,
    # on the same database, that the client does not know.
    stand_in = Server(database_url=server.database_url, name="stand-in").start()
    try:
        missed = [Rest(stand_in.base_url, owner.user["email"]).add_source(vault_id, f"missed {i}") for i in range(4)]
    finally:
        stand_in.cleanup()
    server.start()

    client.wait(lambda: len(client.acks) == 2, "the rejoin after the reconnection", timeout=30)
    assert client.acks[1]["ok"] is True
    client.wait(lambda: len(client.delivered) == 5, "the missed events")
    first = client.delivered[0]
    assert client.delivered == list(range(first, first + 5))
    replayed = [e["source"]["id"] for e in client.heard_named("source:created")][1:]
    assert replayed == [s["id"] for s in missed]
    assert client.connects == 2 and client.sio.connected
