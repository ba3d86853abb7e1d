// node-redis 6 `createCluster` running one cluster-wide model (a name starting with '@',
// stored once for the whole cluster) on tensors in slots of every shard. Run by
// tests/py/test_cluster_wide.py: node cluster-wide.mjs SEED_PORT RESP(2|3) MODEL COUNT
// Each request names a tensor key as the one node-redis routes by; the model is not a key
// of any slot. Prints one JSON line; any mismatch throws (exit code 1).
import assert from 'node:assert/strict';
import { createCluster } from 'redis';

const [port, resp, model, count] = process.argv.slice(2);
const cluster = createCluster({
  rootNodes: [{ socket: { host: '127.0.0.1', port: Number(port) } }],
  RESP: Number(resp),
});
cluster.on('error', (e) => console.error('cluster error:', e));
await cluster.connect();

const send = (key, readonly, args) => cluster.sendCommand(key, readonly, args);
const masters = new Set();
let first = null;
for (let i = 0; i < Number(count); i++) {
  const x = `{njw${resp}-${i}}x`, y = `{njw${resp}-${i}}y`;
  const slot = Number(await send(x, true, ['CLUSTER', 'KEYSLOT', x]));
  masters.add(cluster.slots[slot].master.address);
  assert.equal(await send(x, false, ['AI.TENSORSET', x, 'FLOAT', '1', '4', 'VALUES', '5.0', '3.4', '1.6', '0.4']), 'OK');
  assert.equal(await send(x, false, ['AI.MODELEXECUTE', model, 'INPUTS', '1', x, 'OUTPUTS', '1', y]), 'OK');
  const v = (await send(y, true, ['AI.TENSORGET', y, 'VALUES'])).map(String);
  first ??= v;
  assert.deepEqual(v, first);
  const dag = await send(x, true, ['AI.DAGEXECUTE_RO', 'LOAD', '1', x, '|>',
    'AI.MODELEXECUTE', model, 'INPUTS', '1', x, 'OUTPUTS', '1', 'o', '|>', 'AI.TENSORGET', 'o', 'VALUES']);
  assert.deepEqual(dag[dag.length - 1].map(String), first);
}
console.log(JSON.stringify({ runs: Number(count), shards: masters.size, resp: Number(resp) }));
await cluster.close();
