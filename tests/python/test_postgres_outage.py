"""PostgreSQL goes away under two running nodes and comes back (CONTRACT §2, §1 /readyz, §9):
meanwhile REST answers 503 UNAVAILABLE and readiness fails; afterwards live delivery across
the nodes works again, for clients that were connected all along."""
import pytest

from postgres import TempPostgres
from syncscript import Rest, Server, wait_for


@pytest.fixture
def postgres():
    pg = TempPostgres().start()
    yield pg
    pg.cleanup()


@pytest.fixture
def nodes(postgres):
    started = []
    try:
        for name in ("node-a", "node-b"):
            # A request waits up to connect_timeout (default 5 s) for a connection before its 503.
            env = {"SYNCSCRIPT_DATABASE__CONNECT_TIMEOUT": "1s"}
            started.append(Server(database_url=postgres.url, env=env, name=name).start())
        yield started
    finally:
        for node in started:
            node.cleanup()


def test_while_postgresql_is_down_rest_and_readiness_say_503_and_delivery_resumes_after(postgres, nodes, clients):
    a, b = nodes
    owner = Rest(a.base_url, "owner@demo.com")
    viewer = Rest(a.base_url, "viewer@demo.com")
    vault_id = owner.demo_vault()
    on_a = clients(a.base_url, viewer.cookie, vault_id).connect()
    on_b = clients(b.base_url, viewer.cookie, vault_id).connect()
    owner.add_source(vault_id, "before the outage")
    for client in (on_a, on_b):
        client.wait(lambda c=client: len(c.delivered) == 1, "the event before the outage")

    postgres.stop()
    for node in (a, b):
        res = owner.call("GET", "/api/vaults", base_url=node.base_url)
        assert res.status_code == 503, res.text
        assert res.json()["error"]["code"] == "UNAVAILABLE"
        write = owner.call("POST", f"/api/vaults/{vault_id}/sources",
                           {"title": "during the outage", "fileUrl": "https://example.com/x.pdf"}, base_url=node.base_url)
        assert write.status_code == 503 and write.json()["error"]["code"] == "UNAVAILABLE", write.text
        leaked = [word for word in ("postgres", "sql", "connect", str(postgres.port)) if word in write.text.lower()]
        assert leaked == [], f"the error shows internals: {write.text}"
        assert node.ready_status() == 503

    postgres.start()
    for node in (a, b):
        wait_for(lambda n=node: n.ready_status() == 200, timeout=30, what=f"{node.base_url}/readyz back to 200")
    after = owner.add_source(vault_id, "after the outage", base_url=a.base_url)
    for client in (on_a, on_b):
        client.wait(lambda c=client: len(c.delivered) == 2, "the event after the outage", timeout=20)
        assert client.delivered == [client.delivered[0], client.delivered[0] + 1]
        assert client.heard_named("source:created")[-1]["source"]["id"] == after["id"]
        assert client.sio.connected
