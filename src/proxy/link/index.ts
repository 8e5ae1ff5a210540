export { LinkClient, type LinkClientOptions, type LinkClientStats } from './client.js';
export { LinkServer, type LinkServerOptions } from './server.js';
export type { LinkServerStats } from './server-session.js';
export type { LinkBackend, AttachedDisk, ByteRange, GroupWrite } from './backend.js';
export { RemoteDisk, type RemoteDiskStats } from './remote-disk.js';
export { parsePairingKey } from './pairing-key.js';
export { contentSignature, isZero, type CodecStats } from './payload.js';
export * from './errors.js';
