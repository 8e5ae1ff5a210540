export { LinkClient, type LinkClientOptions, type LinkClientStats } from './client.js';
export { LinkServer, type LinkServerOptions, type LinkBackend, type AttachedDisk, type ByteRange, type GroupWrite, type LinkServerStats } from './server.js';
export { RemoteDisk, type RemoteDiskStats } from './remote-disk.js';
export { parsePairingKey } from './pairing-key.js';
export { contentSignature, isZero, type CodecStats } from './payload.js';
export * from './errors.js';
