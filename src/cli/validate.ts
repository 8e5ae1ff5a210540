import { InputError } from '../errors.js';
import { scenarioJsonSchema } from '../scenario/json-schema.js';
import { loadScenarioFile } from '../sim/scenario-file.js';
import { formatDurationUs } from '../util/units.js';
import { EXIT_OK, parseFlags, requirePositional, type Command, type CommandIo } from './command.js';

const usage = `Usage: spillway validate <scenario.yaml>...
       spillway validate --schema > schemas/scenario.schema.json

Check scenario files without running them. A bad file is reported with the
field path, what is allowed there and the line, and the exit status is 2.
Nothing is changed on disk.

  --schema   print the JSON Schema of the scenario format (what editors use to
             complete and check scenario files; schemas/scenario.schema.json
             is this output) and exit`;

export const validateCommand: Command = {
  name: 'validate',
  summary: 'check a scenario file and name any bad field',
  usage,
  async run(args: string[], io: CommandIo): Promise<number> {
    const { positionals, values } = parseFlags(args, { schema: { type: 'boolean' } }, usage);
    if (values.schema) {
      io.out(JSON.stringify(scenarioJsonSchema(), null, 2));
      return EXIT_OK;
    }
    requirePositional(positionals, 0, 'a scenario file', usage);
    let firstError: InputError | null = null;
    for (const file of positionals) {
      try {
        const s = loadScenarioFile(file);
        const cores = s.datacenter.hosts.reduce((a, h) => a + h.cpuCores, 0);
        io.out(`ok ${file}: ${s.name}, ${s.datacenter.hosts.length} hosts (${cores} cores), ${s.datacenter.vms.length} VMs, ` +
          `${Object.keys(s.workloads).length} workloads, ${s.timeline.length} timeline events, ${s.expect.length} expectations, ` +
          `${formatDurationUs(s.durationUs)}, seed ${s.seed}`);
      } catch (err) {
        if (!(err instanceof InputError) || positionals.length === 1) throw err;
        io.err(`spillway validate: ${err.message}`);
        firstError ??= err;
      }
    }
    if (firstError) throw new InputError(firstError.code, `${positionals.length > 1 ? 'some files are invalid (see above)' : firstError.message}`);
    return EXIT_OK;
  },
};
