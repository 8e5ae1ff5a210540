import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { QmpClient } from '../src/providers/qemu/qmp.js';
import { LiveWorld } from '../src/world/live-world.js';

/** The QMP client against a QMP server the test makes on a unix socket: answers by id, errors, events, a silent monitor. */

let server: Server | undefined;
let dir = '';
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function qmpServer(onLine: (socket: Socket, msg: Record<string, unknown>) => void, greet = true): Promise<string> {
  dir = mkdtempSync(join(tmpdir(), 'spillway-qmp-'));
  const path = join(dir, 'qmp.sock');
  server = createServer((socket) => {
    if (greet) socket.write('{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}}\r\n');
    let buffered = '';
    socket.on('data', (c: Buffer) => {
      buffered += c.toString('utf8');
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        onLine(socket, JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>);
        buffered = buffered.slice(nl + 1);
      }
    });
  });
  await new Promise<void>((resolve) => server!.listen(path, resolve));
  return path;
}

describe('QMP client', () => {
  it('enters command mode, matches answers out of order by id, passes events on, and turns refusals into E_QMP_ERROR', async () => {
    const seen: string[] = [];
    let held: { socket: Socket; id: unknown } | undefined;
    const path = await qmpServer((socket, msg) => {
      seen.push(String(msg.execute));
      if (msg.execute === 'slow') { held = { socket, id: msg.id }; return; }
      if (msg.execute === 'bad') { socket.write(`${JSON.stringify({ error: { class: 'GenericError', desc: 'no such thing' }, id: msg.id })}\n`); return; }
      socket.write(`${JSON.stringify({ event: 'RESUME', data: {}, timestamp: { seconds: 0, microseconds: 0 } })}\n`);
      socket.write(`${JSON.stringify({ return: msg.execute === 'query-status' ? { status: 'running' } : {}, id: msg.id })}\n`);
      if (held) socket.write(`${JSON.stringify({ return: 'late', id: held.id })}\n`);
    });
    const qmp = await QmpClient.connect(new LiveWorld(1, () => {}), path);
    const events: string[] = [];
    qmp.onEvent((e) => events.push(e));
    const slow = qmp.execute('slow');
    const status = await qmp.execute<{ status: string }>('query-status');
    expect(await slow).toBe('late');
    expect(status).toEqual({ status: 'running' });
    await expect(qmp.execute('bad')).rejects.toMatchObject({ code: 'E_QMP_ERROR', message: 'QEMU refused bad: no such thing' });
    expect(seen).toEqual(['qmp_capabilities', 'slow', 'query-status', 'bad']);
    expect(events).toContain('RESUME');
    qmp.close();
    await expect(qmp.execute('query-status')).rejects.toMatchObject({ code: 'E_QMP_CLOSED' });
  });

  it('a monitor that never greets is E_QMP_TIMEOUT, not a hang', async () => {
    const path = await qmpServer(() => undefined, false);
    await expect(QmpClient.connect(new LiveWorld(1, () => {}), path, 200_000)).rejects.toMatchObject({ code: 'E_QMP_TIMEOUT' });
  });
});
