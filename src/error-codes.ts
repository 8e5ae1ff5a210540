/**
 * Every stable error code spillway raises, with what it means to the person who sees it.
 * Callers branch on codes and users search for them, so a code is never renamed lightly;
 * messages may change. test/error-codes.test.ts checks both directions (every 'E_…' literal in
 * src, tui and bin is listed here, every code listed here is raised somewhere) and that
 * docs/errors.md is this catalogue rendered (`npm run docs:errors` rewrites it).
 *
 * Not listed, on purpose:
 * - Node errno names (ECONNRESET, EPIPE, ENOENT…) on errors passed through from sockets and
 *   files, and ECONNRESET on the simulated network's resets, which stand in for the kernel's so
 *   the code above them sees the same code in both worlds. Where spillway makes its own error
 *   of one (a failed connect or listen), it has a code here and the errno is in details.errno.
 * - CloudError's provider codes: a cloud's own error names (InsufficientInstanceCapacity,
 *   RequestLimitExceeded…), kept as the provider spells them (src/ports/cloud.ts).
 *
 * A code that starts with E_BAD_ is a mistake in what the user gave (a flag, a file, a
 * field): the CLI exits 2 for it (src/cli/main.ts), as for any InputError.
 */
export interface ErrorCodeGroup {
  /** The heading of the group in docs/errors.md. */
  readonly title: string;
  /** code → one line a user can act on. */
  readonly codes: Readonly<Record<string, string>>;
}

export const ERROR_CATALOGUE = {
  general: {
    title: 'General',
    codes: {
      E_INVARIANT: 'an internal invariant broke: a bug in spillway, never a mistake of yours; report it with the command and seed',
      E_UNKNOWN: 'a failure that carried no code (a bug or a foreign library error); the message says what failed',
      E_ABORTED: 'a wait was stopped because the flow that started it was cancelled; nothing to fix unless the cancel was unexpected',
    },
  },
  input: {
    title: 'Input: scenario files, config fields, values',
    codes: {
      E_BAD_YAML: 'the scenario file is not valid YAML; fix the syntax at the line named',
      E_YAML_ALIASES: 'the scenario file uses YAML anchors or aliases, which are refused; write the values out or use {a..b} name ranges',
      E_SCENARIO_TOO_LARGE: 'the scenario file is larger than the format allows; use {a..b} name ranges instead of listing each host or VM',
      E_SCENARIO_READ: 'a scenario file cannot be read; check the path and its permissions',
      E_BAD_FIELD: 'a field has a value of the wrong type or out of range; the message names the field and what is allowed',
      E_UNKNOWN_FIELD: 'a field that is not part of the format (often a typo); the message lists the fields allowed there',
      E_BAD_CONFIG: 'a component\'s settings are out of range or contradict each other (machine timeouts, proxy layers, NBD exports, directory, containers); the message names the setting',
      E_BAD_DURATION: 'not a duration; write a number with a unit: us, ms, s, m, h, d (e.g. "90s", "1h30m")',
      E_BAD_SIZE: 'not a size, or a size out of range; write e.g. "4KiB", "512MiB", "20GiB" or a byte count',
      E_BAD_RATE: 'not a rate; write e.g. "100Mbit", "1Gbit" or "50MB/s"',
      E_BAD_GOAL: 'an instance goal that is not one of the goals the instance machine knows; the message lists them',
      E_UNKNOWN_METRIC: 'an expectation names a metric the report does not have; the message lists close matches',
      E_NO_ROOM: 'a VM of the scenario fits on none of its hosts; give the hosts more RAM or the VM less',
      E_NO_WAN: 'a policy or event moves VMs to the cloud but the scenario has no wan: section; add one',
      E_SCALE_OUT_TIER: 'policies.scaleOut.tier names a workload no VM runs; name one a VM of the scenario runs',
      E_MIGRATE_DISABLED: 'a migration wave was asked for while policies.migrate.enabled is false; enable it',
      E_BAD_SCENARIO: 'some scenario files of the suite are invalid, so nothing was run; the message lists each problem',
      E_NO_SCENARIOS: 'the folder or files given hold no scenario (*.yaml, *.yml)',
      E_WAN_OUTAGE: 'a WAN outage with a start in the past or a length that is not positive',
    },
  },
  cli: {
    title: 'Command line and local files',
    codes: {
      E_BAD_ARGUMENT: 'a flag or argument of the command is unknown, malformed or out of range; the message names it and shows the usage',
      E_MISSING_ARGUMENT: 'a required flag or argument is missing; the message names it and shows the usage',
      E_BAD_OUTPUT_FILE: 'an output file (--report, --trace, --junit) has the wrong extension or cannot be written; check the name and the folder',
      E_BAD_COSTS: 'a suite costs file (--costs, or costs.json in a scenario folder) is not JSON of the form { "scenarios": { "<name>": <seconds> } }; fix it or record it again with --record-costs',
      E_BAD_DISK: 'a --disk image is missing or empty; create it (e.g. truncate -s 20G FILE) or fix the path',
      E_BAD_ADDRESS: 'not an address; use HOST:PORT (e.g. 127.0.0.1:10809) or unix:/path/to.sock',
      E_LOCKED: 'another spillway process holds the lock of this file or disk; stop it first (the message names its pid and host)',
      E_KEY_EXISTS: 'keygen would overwrite an existing key file; keep it, or pass --force (peers paired with the old key are then refused)',
      E_KEY_WRITE: 'keygen cannot write the key file; check the folder and its permissions',
      E_NOT_A_TERMINAL: 'the terminal UI needs an interactive terminal on stdin and stdout; run it in a terminal, not a pipe',
      E_TRACE_UNREADABLE: 'a trace file cannot be read; check the path (a .jsonl trace written by run --trace)',
      E_TRACE_EMPTY: 'the trace file holds no events',
      E_TRACE_BAD_LINE: 'a line of the trace file is not a trace event; the message gives the line',
      E_TRACE_TRUNCATED: 'the trace file ends in the middle of an event (the writer stopped early); events before it are intact',
    },
  },
  block: {
    title: 'Block devices, stores and the cache (the data path)',
    codes: {
      E_RANGE: 'a request outside the device (negative, not an integer, or past its end)',
      E_NOSPC: 'no space left: a write past the end of the disk, or a journal, bitmap or cache store too small for what it must hold; give it more room',
      E_READONLY: 'a write to a device opened read-only',
      E_IO: 'the underlying device or file failed the request; retrying may help, the cause says what failed',
      E_INTEGRITY: 'cached data failed its authentication check (damaged or tampered store); the block is dropped and read again from its source',
      E_FAST_ZERO_UNSUPPORTED: 'a fast zero was asked of a device that cannot zero without writing; the client falls back to writing zeros',
      E_CLOSED: 'the device or connection was closed before the request finished',
      E_BAD_KEY: 'the cache encryption key is not 32 bytes, or its epoch is out of range; regenerate the key',
      E_NONCE_REUSE: 'the encrypted cache would repeat a nonce under one key; rotate the key (raise keyEpoch) before writing more',
      E_NOT_HELD: 'a peer or sibling was asked for a block it does not hold; the read goes to the next source',
      E_DISK_NOT_LOCKED: 'a write to an emulated disk without its lease; the writer must lock the disk first',
      E_OVERLAY_SIZE: 'an overlay and its base disk differ in size; they must match',
      E_TARGET_SIZE: 'a storage target was switched to a device of another size; they must match',
    },
  },
  journal: {
    title: 'Journal and write-behind (acknowledged writes on their way on-prem)',
    codes: {
      E_JOURNAL_FULL: 'the write-behind journal is full; writes wait until groups drain on-prem (give it more room if it stays full)',
      E_JOURNAL_CORRUPT: 'the journal holds damage that is not a torn tail; the proxy refuses to start rather than lose acknowledged writes: restore or discard the cache',
      E_WB_SEQ_GAP: 'on-prem got a write group out of order (one was lost); the writer reconnects and resends from the last applied group',
      E_WRITER_UNFINISHED: 'a new writer was refused because the last writer may still hold acknowledged writes on-prem never got; recover that writer\'s cache first',
      E_WRITER_SUPERSEDED: 'this writer session was replaced by a newer one; stop this proxy',
      E_ONPREM_BEHIND: 'the writer knows of groups on-prem says it never applied: on-prem lost state; restore it before writing on',
      E_LEASE_HELD: 'the disk is held by another writer (one writer per disk); release it there first',
    },
  },
  link: {
    title: 'Proxy link (cloud proxy to on-prem proxy)',
    codes: {
      E_NOT_PAIRED: 'the peer failed the pairing-key proof; give both sides the same key (spillway keygen)',
      E_BAD_PAIRING_KEY: 'the pairing key file cannot be read or is not 64 hex characters; create one with spillway keygen FILE',
      E_PROTOCOL: 'the peer sent something the link protocol does not allow (a bug, or not a spillway peer)',
      E_FRAME_TOO_LARGE: 'a link frame is larger than the protocol allows',
      E_TAMPERED: 'an encrypted link frame failed authentication: the link was tampered with or the peer uses another key',
      E_VERSION: 'the peer speaks another link protocol version; run the same spillway version on both sides',
      E_UNKNOWN_DISK: 'the on-prem proxy does not serve the disk asked for; check the disk id (serve onprem prints them)',
      E_LINK_CLOSED: 'the link client was closed; requests after close fail',
      E_LINK_DOWN: 'the peer cannot be reached now (connection lost or refused); it is retried',
      E_LINK_TIMEOUT: 'on-prem did not answer in time: a guest read past --read-timeout (the link is down or on-prem is stuck; the message says which); it is not retried, the guest sees EIO',
      E_CONNECT: 'cannot connect to an address (refused, unreachable); the errno is in details and cause: check that the peer listens there',
      E_LISTEN: 'cannot listen on an address (in use, or not permitted); pick another one',
      E_RUNSTATE: 'the run-state stream between the proxies failed (handshake, frame or acknowledgement); the cutover round is retried',
    },
  },
  nbd: {
    title: 'NBD',
    codes: {
      E_NBD_HANDSHAKE: 'the NBD server\'s handshake is not fixed newstyle NBD or lacks the export information',
      E_NBD_OPTION: 'the NBD server refused an option (e.g. an export name it does not have); the message gives its reply',
      E_NBD_PROTOCOL: 'the NBD server sent a reply the protocol does not allow',
      E_NBD_CLOSED: 'the NBD connection closed; requests on it fail',
    },
  },
  cloud: {
    title: 'Cloud (spillway\'s own codes; provider error names stay as the provider spells them)',
    codes: {
      E_CLOUD_CREDENTIALS: 'no cloud credentials could be loaded; set them up (e.g. AWS_PROFILE or the instance role)',
      E_CLOUD_TRANSPORT: 'the cloud API could not be reached (network, DNS, TLS); it is retried',
      E_NO_CAPACITY: 'no instance type or zone that fits had capacity; try later or allow more types and zones',
      E_NO_FIT: 'no instance type offers what the VM needs (vCPUs, RAM, IOPS); allow larger types',
      E_INSTANCE_LOST: 'a cloud instance is gone or in an unexpected state (terminated, missing) while a step needed it',
      E_INCOMPATIBLE: 'a disk cannot move to the cloud as it is (e.g. larger than a cloud volume can be)',
      E_VOLUME_FAILED: 'a cloud volume went to the error state',
      E_BAD_USER_DATA: 'the instance user data is not a spillway staging document',
      E_USER_DATA_TOO_LARGE: 'the staging user data is over the cloud\'s limit; trim the provisioning data',
      E_UNPRICED_TYPE: 'no price is known for an instance type; add it to cloud.catalog with pricePerHour',
      E_NO_SUBNET: 'no subnet was given for the zone an instance would go to; pass --subnet for a subnet there',
      E_NO_ZONES: 'the cloud lists no available zone in this region; pick another region',
      E_NO_STAGING_IMAGE: 'no staging image was found (none tagged spillway:role=staging, or the --image given does not exist); pass --image',
      E_STAGING_IMAGE_AMBIGUOUS: 'several images are tagged spillway:role=staging; pass --image to pick one, or untag the others',
      E_STAGING_IMAGE_UNUSABLE: 'the staging image cannot be used (the message lists why: architecture, state, root device…); build or pick another',
    },
  },
  hypervisor: {
    title: 'Hypervisor and emulated data center',
    codes: {
      E_NO_HOST: 'no (healthy) host with enough free RAM for the VM, or no host of that name',
      E_NO_VM: 'no VM of that name',
      E_NO_DISK: 'no disk of that name (or the snapshot has none)',
      E_NO_SNAPSHOT: 'no snapshot of that id (a VM snapshot, or a persisted machine snapshot)',
      E_NO_IMAGE: 'no image of that id (a scenario image, or a container image)',
      E_VM_STATE: 'the VM is in the wrong power state for the operation; the message says which are allowed',
      E_HOST_FAILED: 'the host has failed; the VM cannot run there',
      E_HOST_RAM: 'the host lacks the free RAM the VM needs',
      E_MEMORY_IMAGE: 'a memory image was restored into another VM than the one it was taken from',
      E_TASK_RUNNING: 'the VM already runs a task; wait for it to finish',
      E_SIM_REENTRANT: 'the simulation was run again from inside itself (a bug in the caller)',
      E_GUEST_DISK_FULL: 'the emulated guest\'s file tree does not fit its disk; give the disk more room',
      E_GUEST_NO_FILE: 'the emulated guest has no file of that path',
      E_GUEST_VIEW_TOO_LARGE: 'the files selected from the guest are over the size limit; select fewer',
      E_BAD_INVENTORY: 'the qemu inventory file is not valid YAML or names an id twice; the message says where',
      E_QEMU_START: 'qemu exited, or opened no QMP socket in time, when a VM was powered on; the message has qemu\'s own words',
      E_QEMU_IMG: 'qemu-img failed (a missing or locked image, or qemu-utils is not installed); the message has its output',
      E_QEMU_UNSUPPORTED: 'the qemu hypervisor does not do this (memory snapshots, live memory transfer); cut over with the VM stopped',
      E_DISK_FORMAT: 'the disk image has the wrong format for the operation (snapshots need qcow2, openDisk needs raw); convert it with qemu-img',
      E_DUPLICATE_SNAPSHOT: 'the VM already has a snapshot of that name; pick another name or delete the old one',
      E_QMP_ERROR: 'QEMU refused a QMP command; the message has its reason',
      E_QMP_CLOSED: 'the QMP connection closed before QEMU answered (qemu exited or was killed)',
      E_QMP_TIMEOUT: 'QEMU sent no QMP greeting in time (another client holds the monitor, or qemu hangs)',
    },
  },
  directory: {
    title: 'Directory (domain names and machine ids)',
    codes: {
      E_DIR_BAD_ID: 'a machine id that is not 1-128 letters, digits, _ or -',
      E_DIR_BAD_NAME: 'a machine name that is not 1-63 letters, digits and inner hyphens',
      E_DIR_ID_TAKEN: 'the machine id is already another machine\'s (a clone needs a new id)',
      E_DIR_NAME_TAKEN: 'the machine name belongs to another machine (a clone needs a new name)',
      E_DIR_NO_DOMAIN: 'the directory serves no domain of that name; the message lists the ones it serves',
      E_DIR_UNAVAILABLE: 'no domain controller answers now; it is retried',
    },
  },
  containers: {
    title: 'Container platform',
    codes: {
      E_NO_CONTAINER: 'no container of that id',
      E_NO_FRAMEWORK: 'no container framework of that id; the message lists them',
      E_NO_TEMPLATE: 'no system-container or manifest template for that distribution and version',
      E_NO_FILE_VIEW: 'the VM has no file view, so its root filesystem cannot be imaged',
      E_NO_IMAGE_STORE: 'the local image store is not serving; start it first',
      E_IMAGE_NOT_HERE: 'the image is not at this site; images only travel from the local store',
      E_CONTAINER_STATE: 'the container is in the wrong state for the operation (e.g. checkpoint needs it running)',
      E_FRAMEWORK_FULL: 'the framework lacks the free vCPUs or RAM the container needs',
      E_WORKLOAD_RUNNING: 'the VM\'s workload already runs in another container',
    },
  },
  proxyControl: {
    title: 'Proxy control (mounts, exports, cloud sessions, migration)',
    codes: {
      E_NO_EXPORT: 'no on-prem export of that name; mount or clone the disk first',
      E_NO_PROXY: 'no cloud proxy of that id (ids are <vmId>/<diskId>)',
      E_NO_TARGET: 'no storage target is open for the VM',
      E_NO_VOLUME: 'no migration volume of that id',
      E_TARGET_BUSY: 'the VM\'s target is open for another instance',
      E_NOT_CLOUD_ONLY: 'only cloud-only writes may be discarded; this disk persists on-prem',
      E_NOT_MIGRATING: 'the VM is not in migration mode',
      E_UNSUPPORTED: 'the setup lacks what the operation needs (e.g. clones need the snapshot\'s frozen disk)',
    },
  },
  machines: {
    title: 'Machines (lifecycles, steps, timeouts)',
    codes: {
      E_TIMEOUT: 'a step did not finish within its timeout (after its retries); raise the timeout or find what hangs',
      E_BUSY: 'writes are still pending or dirty after a flush or final copy; the step is retried',
      E_ROLLBACK_REQUESTED: 'the flow was asked to roll back',
      E_STUCK: 'an instance stayed in one state longer than its timeout',
      E_STEP_ORDER: 'a step ran before the step that records what it needs (a bug in the machine)',
      E_NOT_PROVIDED: 'an actor was not provided to the machine (a wiring bug)',
      E_MACHINE_CRASH: 'a machine\'s actor threw outside its error handling; the trace names the machine and state',
      E_SNAPSHOT_MISMATCH: 'a persisted snapshot belongs to another machine than the one restored from it',
      E_NOT_RETIRED: 'a migrated VM\'s on-prem copy is still registered, powered on or leased after its retirement; the message names what',
      E_FLOW_FAILED: 'a flow ended failed without recording which step failed or why',
      E_DROP_PAST_RETURN: 'a clone drop failed after its instance was terminated: the clone cannot serve again; the message names what is left behind',
    },
  },
  api: {
    title: 'Management API (spillway run/serve --api) and its clients (flow, api, tui --attach)',
    codes: {
      E_UNAUTHORIZED: 'the API refused the request: no bearer token or the wrong one; send the token in the --api-token-file the server printed',
      E_TOKEN_FILE_OPEN: 'the API token file can be read by others; chmod 600 it (the token is all that guards the API)',
      E_BAD_TOKEN_FILE: 'the API token file cannot be read or created; check the path and the folder',
      E_BAD_TOKEN: 'the API token file does not hold one token of at least 16 characters without spaces',
      E_API_NOT_LOOPBACK: '--api names an address beyond loopback; use 127.0.0.1 or ::1, or add --api-public (with --api-cert/--api-key)',
      E_API_LISTEN: 'the API cannot listen on the --api address (in use, or not this host\'s); pick another port (0 picks a free one)',
      E_API_START: 'the API server cannot be built, usually a bad --api-cert or --api-key PEM file',
      E_API_UNREACHABLE: 'no API answers at that URL; check --api / $SPILLWAY_API and that the run or daemon is still up',
      E_API_REFUSED: 'the API answered the event stream or /health with an error status; the message gives it',
      E_BAD_URL: 'an API URL that is not http:// or https://',
      E_BAD_BODY: 'the request body is not JSON; send a JSON object (see /openapi.json)',
      E_BAD_MEDIA_TYPE: 'the request body is not application/json; send JSON with that content type',
      E_BODY_TOO_LARGE: 'the request body is larger than the API accepts',
      E_REQUEST: 'the API refused the request for a reason of the HTTP layer; the message gives it',
      E_NO_ROUTE: 'the API has no such route; /openapi.json lists them (spillway api --help too)',
      E_NO_FLOW: 'no flow of that id in the run; GET /flows (spillway flow list) lists them',
      E_NO_ACTIONS: 'flows were asked of a server that runs no lifecycle machines (a serve daemon); drive flows in a simulation (spillway run --api)',
      E_NO_MACHINES: 'the run\'s lifecycle machinery could not be set up for the action; the message says why',
      E_RUN_ENDED: 'the run has ended or was stopped: nothing can be started or rolled back any more',
      E_FLOW_RUNNING: 'another flow is at work on the VM; wait for it or roll it back first',
      E_FLOW_FINISHED: 'the flow has finished: there is nothing to roll back',
      E_FLOW_ROLLING_BACK: 'the flow is already rolling back',
      E_VM_MANAGED: 'the burst controller holds the VM; its flows are the controller\'s until it is home again',
      E_NOT_ONPREM: 'the VM does not run on-prem now (transfer and containerize need it there); bring it back with kind reverse',
      E_NOT_IN_CLOUD: 'the VM was not moved to the cloud by a transfer of this API (reverse, migrate and resize need one); transfer it first',
      E_MIGRATED: 'the VM was migrated for good: its disks live in the cloud and it cannot be moved back or migrated again',
      E_NO_STANDBY: 'cutover names a target that is not a booted clone of that VM; start one with kind clone',
      E_READ_ONLY: 'a run attached with tui --attach is watched, not driven: its trace cannot be written',
    },
  },
  controllers: {
    title: 'Controllers (burst, scale-out, migration wave) and runs',
    codes: {
      E_TRANSFER: 'a transfer of a VM to the cloud failed without a more specific code; the message names the step',
      E_REVERSE: 'a move of a VM back on-prem failed without a more specific code; the message names the step',
      E_CLONE_FAILED: 'a clone failed without a more specific code',
      E_DROP: 'a clone drop did not finish, without a more specific code; the message names the step',
      E_FUZZ_RUNAWAY: 'a fuzz seed ran more than 200 million events (a livelock); replay the seed',
      E_COMPARISON_RUN: 'a comparison run failed without a more specific code',
      E_SUITE_WORKER: 'a worker thread of the suite crashed; the item is reported as an error',
    },
  },
} as const satisfies Record<string, ErrorCodeGroup>;

type Catalogue = typeof ERROR_CATALOGUE;
export type ErrorCode = { [G in keyof Catalogue]: keyof Catalogue[G]['codes'] }[keyof Catalogue] & string;

const MEANINGS: ReadonlyMap<string, string> = new Map(
  Object.values(ERROR_CATALOGUE).flatMap((g: ErrorCodeGroup) => Object.entries(g.codes)),
);

/** The one-line meaning of a catalogued code; undefined for any other code (provider names, errno). */
export function meaningOf(code: string): string | undefined {
  return MEANINGS.get(code);
}

/** Whether a code names a mistake in the user's input (the CLI's exit status 2). */
export function isBadInputCode(code: string): boolean {
  return code.startsWith('E_BAD_');
}
