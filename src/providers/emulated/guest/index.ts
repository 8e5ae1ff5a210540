export * from './content.js';
export * from './file-view.js';
export * from './file-content.js';
export * from './boot-profile.js';
export * from './io-profile.js';
export * from './spec.js';
export { GuestImage, type GuestImageOptions } from './image.js';
