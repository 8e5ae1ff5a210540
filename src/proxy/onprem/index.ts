export { createOnpremProxy, type OnpremProxy, type OnpremProxyOptions, type OnpremDiskOptions } from './onprem-proxy.js';
export { DiskManager, type ManagedDisk } from './disk-manager.js';
export { Prioritizer, type FileExtents, type PrioritizerOptions } from './prioritizer.js';
