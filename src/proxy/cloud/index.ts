export { createCloudProxy, memoryCloudStores, type CloudProxy, type CloudProxyOptions, type CloudStores } from './cloud-proxy.js';
