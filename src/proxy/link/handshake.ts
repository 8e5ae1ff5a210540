import type { Timer, World } from '../../world/types.js';
import type { LinkConnection } from './connection.js';
import { LinkError, E_NOT_PAIRED, E_PROTOCOL, E_VERSION } from './errors.js';
import type { AuthMsg, ChallengeMsg, ErrorMsg, HelloMsg } from './messages.js';
import { NONCE_BYTES, proof, proofMatches, sessionKeys } from './secure-channel.js';
import { F_ERROR, Op, PROTOCOL_VERSION, jsonPayload, parseJson, type Frame } from './wire.js';

export type HandshakePhase = 'hello' | 'auth' | 'open' | 'refused';

export interface ServerHandshakeOptions {
  world: World;
  conn: LinkConnection;
  pairingKey: Buffer;
  /** The server's name, sent in the challenge. */
  serverName: string;
  /** The world's label for the server's nonces. */
  nonceLabel: string;
  timeoutUs: number;
  /** A peer was refused (version or pairing); told before the refusal is sent. */
  refused(peer: string | undefined, code: string, message: string): void;
  /** The peer proved the pairing key: the connection is sealed and open. */
  opened(hello: HelloMsg): void;
}

/**
 * The server's side of the link handshake: HELLO (version, client nonce) ->
 * CHALLENGE (server nonce and proof) -> AUTH (client proof) -> AUTH_OK, then
 * both directions are sealed with keys derived from the pairing key and both
 * nonces. A peer that does not finish within the timeout is dropped; one
 * with the wrong version or key is refused with an error frame.
 */
export class ServerHandshake {
  phase: HandshakePhase = 'hello';
  /** The peer's HELLO, once received. */
  hello: HelloMsg | null = null;
  private serverNonce: Buffer | null = null;
  private readonly timer: Timer;

  constructor(private readonly o: ServerHandshakeOptions) {
    this.timer = o.world.clock.schedule(o.timeoutUs, () => {
      if (this.phase !== 'open') o.conn.destroy(new LinkError(E_PROTOCOL, 'handshake timed out'));
    });
  }

  get open(): boolean {
    return this.phase === 'open';
  }

  /** The connection closed. */
  cancel(): void {
    this.timer.cancel();
  }

  /** Handle a frame that arrived before the link opened; throws on a protocol violation. */
  onFrame(f: Frame): void {
    if (this.phase === 'refused') return;
    if (this.phase === 'hello') return this.onHello(f);
    if (this.phase === 'auth') return this.onAuth(f);
    throw new LinkError(E_PROTOCOL, 'handshake frame after the link opened');
  }

  private onHello(f: Frame): void {
    const o = this.o;
    if (f.op !== Op.HELLO) throw new LinkError(E_PROTOCOL, 'expected HELLO');
    const hello = parseJson<HelloMsg>(f.payload, 'HELLO');
    this.hello = hello;
    if (hello.v !== PROTOCOL_VERSION) { this.refuse(E_VERSION, `link protocol version ${hello.v} is not supported; this on-prem proxy speaks ${PROTOCOL_VERSION} (version 3 added the cache generation to HELLO): run the same spillway release on both proxies`); return; }
    const serverNonce = o.world.unpredictable(o.nonceLabel, NONCE_BYTES);
    this.serverNonce = serverNonce;
    const clientNonce = Buffer.from(hello.nonce, 'hex');
    const msg: ChallengeMsg = { v: PROTOCOL_VERSION, nonce: serverNonce.toString('hex'), proof: proof(o.pairingKey, 'server', clientNonce, serverNonce).toString('hex'), server: o.serverName };
    o.conn.send({ op: Op.CHALLENGE, flags: 0, id: 0, payload: jsonPayload(msg) });
    this.phase = 'auth';
  }

  private onAuth(f: Frame): void {
    const o = this.o;
    if (f.op !== Op.AUTH) throw new LinkError(E_PROTOCOL, 'expected AUTH');
    const auth = parseJson<AuthMsg>(f.payload, 'AUTH');
    const hello = this.hello!;
    const clientNonce = Buffer.from(hello.nonce, 'hex');
    const expected = proof(o.pairingKey, 'client', clientNonce, this.serverNonce!);
    if (!proofMatches(expected, Buffer.from(String(auth.proof), 'hex'))) {
      this.refuse(E_NOT_PAIRED, 'this peer is not paired with this on-prem proxy (its proof does not match the pairing key)');
      return;
    }
    o.conn.send({ op: Op.AUTH_OK, flags: 0, id: 0, payload: Buffer.alloc(0) });
    const keys = sessionKeys(o.pairingKey, clientNonce, this.serverNonce!);
    o.conn.secure(keys.s2c, keys.c2s);
    this.phase = 'open';
    this.timer.cancel();
    o.opened(hello);
  }

  private refuse(code: string, message: string): void {
    this.phase = 'refused';
    this.o.refused(this.hello?.peer, code, message);
    this.o.conn.send({ op: Op.REPLY, flags: F_ERROR, id: 0, payload: jsonPayload({ code, message } satisfies ErrorMsg) });
    this.o.conn.end();
  }
}
