// node-redis 6 against a real shardai process, over RESP2 and RESP3 (node-redis opens a
// RESP3 connection with HELLO 3 and fails if it errors). The binary is $SHARDAI_BIN or
// target/release/shardai; the server is started on a free port and stopped by its PID.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.SHARDAI_BIN ?? resolve(here, '../../target/release/shardai');
let server;
let port;
let dir;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function waitReady() {
  for (let i = 0; i < 250; i++) {
    const c = createClient({ socket: { port, host: '127.0.0.1', reconnectStrategy: false } });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.ping();
      await c.quit();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 40));
    }
  }
  throw new Error('shardai did not start');
}

before(async () => {
  port = await freePort();
  dir = mkdtempSync(join(tmpdir(), 'shardai-node-'));
  server = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir], { stdio: 'ignore' });
  await waitReady();
});

after(() => {
  server.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

for (const RESP of [2, 3]) {
  test(`tensors over RESP${RESP}`, async () => {
    const c = createClient({ socket: { port, host: '127.0.0.1' }, RESP });
    await c.connect();
    try {
      assert.equal(await c.sendCommand(['AI.TENSORSET', `t${RESP}`, 'FLOAT', '2', '2', 'VALUES', '1', '2', '3', '4']), 'OK');
      const meta = await c.sendCommand(['AI.TENSORGET', `t${RESP}`, 'META']);
      assert.deepEqual(meta, ['dtype', 'FLOAT', 'shape', [2, 2]]);
      const values = await c.sendCommand(['AI.TENSORGET', `t${RESP}`, 'VALUES']);
      assert.deepEqual(values, RESP === 3 ? [1, 2, 3, 4] : ['1', '2', '3', '4']);
      const blob = Buffer.from(new Float32Array([1, 2, 3, 4]).buffer);
      assert.equal(await c.sendCommand(['AI.TENSORSET', 'b', 'FLOAT', '4', 'BLOB', blob]), 'OK');
      const back = await c.sendCommand(['AI.TENSORGET', 'b', 'BLOB'], { typeMapping: { 36: Buffer } });
      assert.ok(Buffer.isBuffer(back) && back.equals(blob));
      await assert.rejects(c.sendCommand(['AI.TENSORSET', 'x', 'INT8', '1', 'VALUES', '300']), /ERR invalid value/);
      assert.equal(await c.type(`t${RESP}`), 'AI_TENSOR');
      assert.equal(await c.set('k', 'v'), 'OK');
      assert.equal(await c.get('k'), 'v');
    } finally {
      await c.quit();
    }
  });
}
