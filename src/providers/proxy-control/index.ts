export { CoreProxyControl, createProxyControl, type ProxyControlOptions } from './core-proxy-control.js';
export { bootModelFromImages, type BootPhase, type GuestBootModel, type PhasedRead } from './guest-boot.js';
export { CowOverlay, ReadOnlyView, TargetDevice, WriteTracker } from './devices.js';
export { DirtyModel, RunStateReceiver, RunStateServer } from './run-state.js';
