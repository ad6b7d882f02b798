// The client library (CONTRACT §10) across nodes (§9): three nodes on one PostgreSQL database,
// the client behind a TCP gate that fails over to another node as a balancer would. Each test
// stops the client's node, commits through the third one while the client is kept away, and
// the client rejoins there with since.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import {
  DEMO, api, createSource, demoVaultId, importServedClient, latestSeq, login, skipReason, startCluster, waitFor,
} from './helpers.mjs';
import { openGate } from './gate.mjs';

describe('the client library when its node goes away', { skip: skipReason(), timeout: 180_000 }, () => {
  let cluster;
  let connect;

  before(async () => {
    cluster = await startCluster(3, { SYNCSCRIPT_SERVER__DRAIN_PERIOD: '1s' });
    ({ connect } = await importServedClient(cluster.nodes[0].baseUrl));
  });

  after(async () => {
    await cluster?.stop();
  });

  const stops = [
    ['SIGKILL', (node) => node.kill()],
    ['SIGTERM drain', async (node) => {
      await new Promise((resolve) => { node.proc.once('exit', resolve); node.proc.kill('SIGTERM'); });
      assert.match(node.logTail(100), /draining done/, 'the node drained its sockets');
    }],
  ];
  stops.forEach(([how, stop], i) => {
    test(`every event once and in order after a ${how} of the client's node, caught up on another node`, async () => {
      const [away, other] = [cluster.nodes[i], cluster.nodes[2]];
      const base = other.baseUrl;
      const owner = await login(base, DEMO.owner);
      const viewer = await login(base, DEMO.viewer);
      const vaultId = await demoVaultId(base, owner);
      const since = await latestSeq(base, owner, vaultId);

      const gate = await openGate(away.port);
      const client = connect(gate.url, {
        io,
        headers: { cookie: viewer },
        socketOptions: { reconnectionDelay: 100, reconnectionDelayMax: 500 },
      });
      try {
        const vault = client.vault(vaultId, { since });
        const events = [];
        const statuses = [];
        vault.on('event', (e) => events.push(`${e.type}#${e.seq}`));
        vault.on('status', (s) => statuses.push(s));
        await waitFor(() => vault.status === 'joined', 10_000, 'joined on the first node');
        await createSource(base, owner, vaultId, `through the other node, live (${how})`);
        await waitFor(() => vault.seq === since + 1, 10_000, 'the live event');

        await stop(away);
        gate.refuse();
        gate.retarget(other.port);
        await waitFor(() => vault.status === 'reconnecting', 10_000, 'reconnecting');
        for (let n = 0; n < 3; n += 1) await createSource(base, owner, vaultId, `while away ${n} (${how})`);
        await gate.accept();
        await waitFor(() => vault.status === 'joined', 10_000, 'joined on the other node');
        await createSource(base, owner, vaultId, `after the failover (${how})`);
        const last = await latestSeq(base, owner, vaultId);
        await waitFor(() => vault.seq === last, 10_000, `seq ${last}`);

        const { body } = await api(base, owner, 'GET', `/api/vaults/${vaultId}/events?since=${since}`, undefined, 200);
        assert.deepEqual(events, body.events.map((e) => `${e.type}#${e.seq}`));
        assert.deepEqual(statuses, ['joined', 'reconnecting', 'joined']);
      } finally {
        client.close();
        gate.close();
      }
    });
  });
});
