"""Fixtures of the python-socketio suite: a fresh server per test (SQLite, demo seed), its
demo accounts signed in over REST, and clients that are closed when the test ends."""
import pytest

from syncscript import DEMO, Rest, Server, VaultClient


@pytest.fixture
def server(request):
    """A node of its own; `indirect` parametrization passes it extra environment."""
    node = Server(env=getattr(request, "param", None)).start()
    yield node
    if node.proc.poll() is None:
        node.stop()
    node.cleanup()


@pytest.fixture
def rest(server):
    """`rest["owner"]` etc.: each demo account signed in on `server`."""
    return {who: Rest(server.base_url, email) for who, email in DEMO.items()}


@pytest.fixture
def vault_id(rest):
    return rest["owner"].demo_vault()


@pytest.fixture
def clients():
    """`clients(base_url, cookie, vault_id, ...)` makes a VaultClient that the test need not close."""
    made = []

    def make(*args, **kwargs):
        client = VaultClient(*args, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test prints the tail of its server's log."""
    outcome = yield
    report = outcome.get_result()
    node = item.funcargs.get("server") if hasattr(item, "funcargs") else None
    if report.failed and node is not None:
        report.sections.append(("server log", node.log_tail()))
