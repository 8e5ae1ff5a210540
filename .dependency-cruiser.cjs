/**
 * Import rules of ARCHITECTURE.md §9, checked in CI:
 *   npx depcruise src tui bin --config .dependency-cruiser.cjs
 * One direction of dependence, top to bottom (a wing may import itself and any wing below it):
 *   bin -> cli -> suite ; api ; sim ; report ; controller ; scenario ; machines ; providers ; ports ; proxy ; world ; util + errors.ts + error-codes.ts
 * tui/ is a leaf consumer beside cli: it imports only world, util and errors, and only cli imports it.
 * Type-only imports count (tsPreCompilationDeps: true): a type import upward is still a dependency upward.
 */
const LAYERS = [
  ['bin', '^bin/'],
  ['cli', '^src/cli/'],
  ['suite', '^src/suite/'],
  ['api', '^src/api/'],
  ['fuzz', '^src/fuzz/'],
  ['sim', '^src/sim/'],
  ['report', '^src/report/'],
  ['controller', '^src/controller/'],
  ['scenario', '^src/scenario/'],
  ['machines', '^src/machines/'],
  ['providers', '^src/providers/'],
  ['ports', '^src/ports/'],
  ['proxy', '^src/proxy/'],
  ['world', '^src/world/'],
  ['util', '^src/(util/|(errors|error-codes)\\.ts$)'],
];

const upward = LAYERS.slice(1).map(([name, from], i) => ({
  name: `no-upward-from-${name}`,
  comment: `${name} may import only itself and the wings below it (ARCHITECTURE.md §9)`,
  severity: 'error',
  from: { path: from },
  to: { path: LAYERS.slice(0, i + 1).map(([, p]) => p).join('|') },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'no import cycles, type-only imports included',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...upward,
    {
      name: 'proxy-core-imports-only-world-util-errors',
      comment: 'the proxy core (src/proxy) imports only src/world, src/util, src/errors.ts and itself; it names no port, provider or model',
      severity: 'error',
      from: { path: '^src/proxy/' },
      to: { path: '^(src|tui|bin)/', pathNot: '^src/(proxy/|world/|util/|(errors|error-codes)\\.ts$)' },
    },
    {
      name: 'providers-not-runner-report-controllers',
      comment: 'providers never import the runner, the report, the controllers, the API or the CLI',
      severity: 'error',
      from: { path: '^src/providers/' },
      to: { path: '^src/(sim|report|controller|api|cli|suite)/|^bin/|^tui/' },
    },
    {
      name: 'tui-imports-only-world-util-errors',
      comment: 'the TUI renders trace snapshots: it imports only world, util and errors',
      severity: 'error',
      from: { path: '^tui/' },
      to: { path: '^(src|bin)/', pathNot: '^src/(world/|util/|(errors|error-codes)\\.ts$)' },
    },
    {
      name: 'only-cli-imports-tui',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^tui/' },
    },
    {
      name: 'src-not-test',
      comment: 'test tooling (machine coverage, diagrams) lives in test/helpers and is never imported by src',
      severity: 'error',
      from: { path: '^(src|tui|bin)/' },
      to: { path: '^test/' },
    },
    {
      name: 'controllers-take-ports',
      comment: 'controllers take ports (src/ports), never a concrete adapter: the same controller can run on a real hypervisor; the runner (src/sim) plugs the adapters in',
      severity: 'error',
      from: { path: '^src/controller/' },
      to: { path: '^src/providers/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|test|bench|docs|scenarios)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.mjs', '.js', '.d.ts'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
