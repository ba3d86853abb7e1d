// node-redis 6 over TLS with a client certificate and an ACL user, against a real shardai
// serving TLS only (--port 0). Certificates are made with the openssl command line in a
// temporary folder; the server is stopped by its PID and the folder removed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.SHARDAI_BIN ?? resolve(here, '../../target/release/shardai');
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
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

function openssl(...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

function makeCert(name) {
  writeFileSync(join(dir, `${name}.ext`),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  openssl('req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key',
    '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
}

async function listening() {
  for (let i = 0; i < 250; i++) {
    const ok = await new Promise((done) => {
      const s = connect(port, '127.0.0.1', () => { s.destroy(); done(true); });
      s.on('error', () => done(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 40));
  }
  throw new Error('shardai did not start');
}

const tls = (withCert) => ({
  port, host: '127.0.0.1', tls: true, servername: 'localhost', reconnectStrategy: false,
  ca: readFileSync(join(dir, 'ca.crt')),
  ...(withCert ? { cert: readFileSync(join(dir, 'client.crt')), key: readFileSync(join(dir, 'client.key')) } : {}),
});

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'shardai-node-tls-'));
  openssl('req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2',
    '-subj', '/CN=shardai test ca');
  makeCert('server');
  makeCert('client');
  writeFileSync(join(dir, 'users.acl'),
    'user default on >adminpw ~* &* +@all\nuser app on >apppw ~app:* +@all -@admin\n');
  port = await freePort();
  server = spawn(bin, ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
    '--dir', dir, '--tls-cert-file', join(dir, 'server.crt'), '--tls-key-file',
    join(dir, 'server.key'), '--tls-ca-cert-file', join(dir, 'ca.crt'),
    '--aclfile', join(dir, 'users.acl')], { stdio: 'ignore' });
  await listening();
});

after(() => {
  server.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

for (const RESP of [2, 3]) {
  test(`TLS with a client certificate and an ACL user over RESP${RESP}`, async () => {
    const c = createClient({ socket: tls(true), username: 'app', password: 'apppw', RESP });
    await c.connect();
    assert.equal(await c.sendCommand(['ACL', 'WHOAMI']), 'app');
    assert.equal(await c.sendCommand(['AI.TENSORSET', 'app:t', 'FLOAT', '2', 'VALUES', '1', '2']), 'OK');
    assert.deepEqual(await c.sendCommand(['AI.TENSORGET', 'app:t', 'VALUES']), RESP === 3 ? [1, 2] : ['1', '2']);
    await assert.rejects(c.sendCommand(['AI.TENSORGET', 'other', 'VALUES']),
      /NOPERM No permissions to access a key/);
    await assert.rejects(c.sendCommand(['CONFIG', 'SET', 'maxclients', '5']),
      /NOPERM User app has no permissions to run the 'config\|set' command/);
    await c.quit();
  });
}

test('a TLS client without a certificate is refused', async () => {
  const c = createClient({ socket: tls(false), password: 'adminpw' });
  c.on('error', () => {});
  await assert.rejects(c.connect().then(() => c.ping()));
  c.destroy?.();
});
