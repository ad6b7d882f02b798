// A TCP gate between a client and the server: it can refuse new connections (the client
// stays away however often it retries) and cut the open ones (as a network drop or a dying
// server would), so a test decides when a client is away instead of sleeping and hoping.
import { connect, createServer } from 'node:net';

/** Opens a gate to 127.0.0.1:`targetPort` on a free port of its own. */
export async function openGate(targetPort) {
  const open = new Set();
  let target = targetPort;
  const listener = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    const pair = [client, upstream];
    open.add(pair);
    const end = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const side of pair) {
      side.on('error', end);
      side.on('close', end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await listen(listener, 0);
  const { port } = listener.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    /** New connections are refused until `accept`; open ones stay. */
    refuse() {
      if (listener.listening) listener.close();
    },
    accept() {
      return listener.listening ? Promise.resolve() : listen(listener, port);
    },
    /** New connections go to another port (another node, as a balancer fails over). */
    retarget(port) {
      target = port;
    },
    /** Closes every open connection, as a network drop would. */
    cut() {
      for (const [client, upstream] of Array.from(open)) {
        client.destroy();
        upstream.destroy();
      }
      open.clear();
    },
    close() {
      this.refuse();
      this.cut();
    },
  };
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}
