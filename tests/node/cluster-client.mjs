// node-redis 6 `createCluster` against a live shardai cluster, started from one seed node.
// Run by tests/py/test_cluster.py: node cluster-client.mjs SEED_PORT RESP(2|3) MODEL.onnx
// Stores tensors on keys spread over every shard, stores a model on a {tag} in each shard,
// runs AI.MODELEXECUTE and AI.DAGEXECUTE there, reads everything back, and prints one JSON
// line; any mismatch throws (exit code 1).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createCluster } from 'redis';

const [port, resp, modelPath] = process.argv.slice(2);
const cluster = createCluster({
  rootNodes: [{ socket: { host: '127.0.0.1', port: Number(port) } }],
  RESP: Number(resp),
});
cluster.on('error', (e) => console.error('cluster error:', e));
await cluster.connect();

const send = (key, readonly, args) => cluster.sendCommand(key, readonly, args);
const p = `njs${resp}`;
for (let i = 0; i < 60; i++) {
  const key = `${p}:${i}`;
  assert.equal(await send(key, false, ['AI.TENSORSET', key, 'INT32', '1', 'VALUES', String(i)]), 'OK');
}
for (let i = 0; i < 60; i++) {
  const key = `${p}:${i}`;
  const v = await send(key, true, ['AI.TENSORGET', key, 'VALUES']);
  assert.deepEqual(v.map(Number), [i]);
}

// One {tag} per shard: the masters' slot ranges come from the client's own slot map.
const blob = readFileSync(modelPath);
const shards = new Set();
for (let n = 0; shards.size < cluster.masters.length && n < 10000; n++) {
  const tag = `${p}t${n}`;
  const slot = Number(await send(tag, true, ['CLUSTER', 'KEYSLOT', tag]));
  const owner = cluster.slots[slot].master.address;
  if (shards.has(owner)) continue;
  shards.add(owner);
  const m = `m{${tag}}`, x = `in{${tag}}`, y = `out{${tag}}`;
  assert.equal(await send(m, false, ['AI.MODELSTORE', m, 'ONNX', 'CPU', 'BLOB', blob]), 'OK');
  await send(x, false, ['AI.TENSORSET', x, 'FLOAT', '1', '4', 'VALUES', '5.0', '3.4', '1.6', '0.4']);
  assert.equal(await send(m, false, ['AI.MODELEXECUTE', m, 'INPUTS', '1', x, 'OUTPUTS', '1', y]), 'OK');
  const direct = await send(y, true, ['AI.TENSORGET', y, 'VALUES']);
  assert.equal(direct.length, 1);
  const dag = await send(x, false, ['AI.DAGEXECUTE', 'LOAD', '1', x, '|>',
    'AI.MODELEXECUTE', m, 'INPUTS', '1', x, 'OUTPUTS', '1', 'o', '|>', 'AI.TENSORGET', 'o', 'VALUES']);
  assert.deepEqual(dag[dag.length - 1].map(String), direct.map(String));
}

console.log(JSON.stringify({ masters: cluster.masters.length, keys: 60, shards: shards.size, resp: Number(resp) }));
await cluster.close();
