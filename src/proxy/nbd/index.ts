export { NbdServer, type NbdExport, type NbdServerOptions, type NbdServerStats, DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_IN_FLIGHT_BYTES, DEFAULT_HANDSHAKE_TIMEOUT_US, DEFAULT_MAX_CONNECTIONS } from './server.js';
export { NbdClient, NbdNegotiation, type NbdClientOptions, type ExportInfo, type RawReply, type OptionReply } from './client.js';
export * as nbd from './protocol.js';
