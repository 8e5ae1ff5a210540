import { invariant } from '../../errors.js';
import type { AppIoSession } from '../../ports/app-io.js';
import type { CloudProxy } from '../../proxy/cloud/index.js';

/** What a burst VM measured while it ran in the cloud (report.burst.vms.<vm>). */
export interface SessionFigures {
  bootUs: number;
  bootReads: number;
  bootBytes: number;
  bootWorkingSetBytes: number;
  guestBytesRead: number;
  guestBytesWritten: number;
  cacheHits: number;
  cacheMisses: number;
  prefetchHits: number;
  prefetchCompleted: number;
  wireBytes: number;
  writeBack: { lagUs: number; backlogBytes: number; etaUs: number | null; bytesShipped: number };
  /** Mean read latency of the application I/O through the proxy (the monitoring's "cloud storage latency"). */
  meanReadLatencyUs: number;
}

export interface BootFigures {
  bootUs: number;
  bootReads: number;
  bootBytes: number;
  bootWorkingSetBytes: number;
}

/**
 * A burst VM's figures summed over its disks' cloud proxies. The proxies are
 * kept by reference, so their counters stay readable after the reverse
 * closed them.
 */
export function sessionFigures(proxies: readonly CloudProxy[], boot: BootFigures, io: AppIoSession | null): SessionFigures {
  const f: SessionFigures = {
    ...boot, guestBytesRead: 0, guestBytesWritten: io?.written ?? 0, cacheHits: 0, cacheMisses: 0, prefetchHits: 0, prefetchCompleted: 0, wireBytes: 0,
    writeBack: { lagUs: 0, backlogBytes: 0, etaUs: null, bytesShipped: 0 }, meanReadLatencyUs: io?.meanReadLatencyUs() ?? 0,
  };
  for (const p of proxies) {
    const cache = p.cache.stats();
    const wb = p.writeBehind.stats();
    f.guestBytesRead += p.guestBytes();
    f.cacheHits += cache.hits;
    f.cacheMisses += cache.misses;
    f.prefetchHits += cache.prefetchHits;
    f.prefetchCompleted += p.prefetch.stats().completedBlocks;
    f.wireBytes += p.wireBytes();
    // The VM's write-back is as far behind as its slowest disk.
    f.writeBack.lagUs = Math.max(f.writeBack.lagUs, wb.lagUs);
    f.writeBack.backlogBytes += wb.backlogBytes;
    if (wb.etaUs !== null) f.writeBack.etaUs = Math.max(f.writeBack.etaUs ?? 0, wb.etaUs);
    f.writeBack.bytesShipped += wb.bytesShipped;
  }
  return f;
}

/**
 * An I/O session that has ended for good (the VM is home): what it measured,
 * without the storage target it ran against, so the closed proxy stack can be
 * freed. Starting it again is a bug: a new burst makes a new session.
 */
export function endedIo(io: AppIoSession): AppIoSession {
  // Nothing below may keep `io` itself: that would keep its device, the whole closed stack.
  const { vmId, diskId, written, acked } = io;
  const latencyUs = io.meanReadLatencyUs();
  return {
    vmId, diskId, written, acked,
    start() { invariant(false, `the application I/O of ${vmId} ended with its burst; a new burst starts a new session`); },
    stop: () => Promise.resolve(),
    meanReadLatencyUs: () => latencyUs,
  };
}
