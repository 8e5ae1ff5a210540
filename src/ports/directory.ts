/** A directory service: cloned machines get a unique identity and re-join the domain (FIG 12 step 1211). */
export interface Directory {
  join(req: { machineName: string; machineId: string; domain: string }): Promise<void>;
  leave(req: { machineName: string; domain: string }): Promise<void>;
}

