import { existsSync, readFileSync } from 'node:fs';
import { DescribeSecurityGroupsCommand } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import type { WireRecord } from '../src/providers/aws/recorder.js';
import { EC2_ACTIONS } from '../src/providers/emulated/ec2/config.js';
import { parseCloudConfig } from '../src/scenario/cloud.js';
import { Ec2Cloud } from '../src/providers/aws/ec2-cloud.js';
import { EMULATED_CREDENTIALS, createEmulatedCloud } from '../src/providers/emulated/ec2/emulated-cloud.js';
import { SimWorld } from '../src/world/sim-world.js';
import { requireInterop } from './interop-tools.js';
import { STORMY, burstScript } from './cloud-script.js';

/**
 * Every answer the emulated EC2 gives, checked against the official EC2
 * service model (botocore's service-2.json, as Debian's python3-botocore
 * ships it): each element must be a member of its shape under its wire name,
 * lists must hold `item`s, enums must hold allowed values, numbers, booleans
 * and timestamps must parse. The SDK parses leniently (unknown elements are
 * dropped), so this is what catches a wrong wire name or enum.
 */
const MODEL = '/usr/lib/python3/dist-packages/botocore/data/ec2/2016-11-15/service-2.json';

type Shape = {
  type: string;
  members?: Record<string, { shape: string; locationName?: string }>;
  member?: { shape: string; locationName?: string };
  enum?: string[];
};
type ServiceModel = { operations: Record<string, { output?: { shape: string } }>; shapes: Record<string, Shape> };

interface XmlNode { name: string; children: XmlNode[]; text: string }

/** Enough XML for EC2 answers: elements, text, the five entities, a declaration and attributes (ignored). */
function parseXml(xml: string): XmlNode {
  const root: XmlNode = { name: '#root', children: [], text: '' };
  const stack = [root];
  const re = /<\?[^>]*\?>|<(\/?)([A-Za-z_][\w.-]*)[^>]*?(\/?)>|([^<]+)/g;
  for (let m = re.exec(xml); m; m = re.exec(xml)) {
    const top = stack[stack.length - 1]!;
    if (m[4] !== undefined) {
      top.text += m[4].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
    } else if (m[2] !== undefined) {
      if (m[1]) {
        if (top.name !== m[2]) throw new Error(`</${m[2]}> closes <${top.name}>`);
        stack.pop();
      } else {
        const node: XmlNode = { name: m[2], children: [], text: '' };
        top.children.push(node);
        if (!m[3]) stack.push(node);
      }
    }
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  return root.children[0]!;
}

function validate(model: ServiceModel, shapeName: string, node: XmlNode, path: string, problems: string[]): void {
  const shape = model.shapes[shapeName];
  if (!shape) { problems.push(`${path}: unknown shape ${shapeName}`); return; }
  switch (shape.type) {
    case 'structure': {
      const byWire = new Map(Object.entries(shape.members ?? {}).map(([name, m]) => [m.locationName ?? name, m]));
      for (const child of node.children) {
        const member = byWire.get(child.name);
        if (!member) { problems.push(`${path}.${child.name}: not a member of ${shapeName}`); continue; }
        validate(model, member.shape, child, `${path}.${child.name}`, problems);
      }
      return;
    }
    case 'list': {
      const itemName = shape.member?.locationName ?? 'member';
      node.children.forEach((child, i) => {
        if (child.name !== itemName) problems.push(`${path}[${i}]: <${child.name}> in a list of <${itemName}>`);
        else validate(model, shape.member!.shape, child, `${path}[${i}]`, problems);
      });
      return;
    }
    case 'string':
      if (node.children.length) problems.push(`${path}: a string with child elements`);
      if (shape.enum && !shape.enum.includes(node.text)) problems.push(`${path}: "${node.text}" is not one of ${shapeName} (${shape.enum.join(', ')})`);
      return;
    case 'integer': case 'long':
      if (!/^-?\d+$/.test(node.text)) problems.push(`${path}: "${node.text}" is not an ${shape.type}`);
      return;
    case 'double': case 'float':
      if (!Number.isFinite(Number(node.text)) || node.text.trim() === '') problems.push(`${path}: "${node.text}" is not a number`);
      return;
    case 'boolean':
      if (node.text !== 'true' && node.text !== 'false') problems.push(`${path}: "${node.text}" is not a boolean`);
      return;
    case 'timestamp':
      if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(node.text)) problems.push(`${path}: "${node.text}" is not an ISO 8601 timestamp`);
      return;
    default:
      problems.push(`${path}: shape type ${shape.type} is not checked by this test`);
  }
}

/** Problems in one recorded answer; an empty list is a valid answer. */
function checkAnswer(model: ServiceModel, record: WireRecord): string[] {
  const doc = parseXml(record.body);
  if (record.status !== 200) {
    const codes = doc.name === 'Response' ? doc.children.find((c) => c.name === 'Errors')?.children.map((e) => e.children.find((c) => c.name === 'Code')?.text) : undefined;
    return codes?.length && codes.every((c) => c) ? [] : [`${record.action}: an error answer without Response/Errors/Error/Code`];
  }
  const op = model.operations[record.action];
  if (!op) return [`${record.action}: not an EC2 operation`];
  if (doc.name !== `${record.action}Response`) return [`${record.action}: root element <${doc.name}>`];
  const problems: string[] = [];
  const { requestId, rest } = { requestId: doc.children.filter((c) => c.name === 'requestId'), rest: doc.children.filter((c) => c.name !== 'requestId') };
  if (requestId.length !== 1) problems.push(`${record.action}: ${requestId.length} requestId elements`);
  if (op.output) validate(model, op.output.shape, { ...doc, children: rest }, record.action, problems);
  // The model gives these calls no output, but EC2 answers <return>true</return> (the API reference's examples for DeleteVolume, CreateTags, …).
  else if (rest.length !== 1 || rest[0]!.name !== 'return' || rest[0]!.text !== 'true') problems.push(`${record.action}: the operation has no output; the answer must be <return>true</return>, it has ${rest.map((c) => c.name).join(', ')}`);
  return problems;
}

const present = existsSync(MODEL);
if (!present) {
  const message = `EC2 SERVICE MODEL MISSING (${MODEL}) — install with: apt-get install -y python3-botocore`;
  if (requireInterop) throw new Error(message);
  console.warn(`\n!!! ${message} — SKIPPING\n`);
}

describe.skipIf(!present)('the emulated EC2 answers in the official service model', () => {
  it('every action it serves, in every answer of a burst and a network-aware launch, validates', async () => {
    const model = JSON.parse(readFileSync(MODEL, 'utf8')) as ServiceModel;
    for (const action of EC2_ACTIONS) expect(model.operations[action], `${action} is an EC2 operation`).toBeDefined();

    const world = new SimWorld(16);
    const records: WireRecord[] = [];
    const cloud = createEmulatedCloud(world, parseCloudConfig(STORMY), 'run-model', { record: (r) => records.push(r) });
    let done = false;
    void (async () => {
      await burstScript(cloud, world);
      const zones = await cloud.describeAvailabilityZones();
      const subnets = await cloud.describeSubnets([]);
      const groups = await cloud.send<{ SecurityGroups?: Array<{ GroupId?: string }> }>('DescribeSecurityGroups', new DescribeSecurityGroupsCommand({}));
      const [image] = await cloud.describeImages({ tags: { 'spillway:role': 'staging' } });
      const networked = createEmulatedCloud(world, parseCloudConfig({ consistencyWindowMs: 0 }), 'run-net', { record: (r) => records.push(r) });
      const sub = (await networked.describeSubnets([])).find((n) => n.zone === 'us-east-1b')!;
      const launcher = new Ec2Cloud({
        world, runId: 'run-net', region: 'us-east-1', endpoint: networked.endpoint, sequential: true, credentials: EMULATED_CREDENTIALS,
        record: (r) => records.push(r),
        launch: { subnetByZone: { [sub.zone]: sub.id }, securityGroupIds: [groups.SecurityGroups![0]!.GroupId!], instanceProfile: 'spillway-staging' },
      });
      const [inst] = await launcher.runInstances({ clientToken: 'n', imageId: image!.id, instanceType: 'm6i.large', zone: sub.zone, count: 1 });
      launcher.destroy();
      await networked.describeInstances({ ids: [inst!.id] });
      await networked.describeVolumes({});
      await networked.describeInstanceTypes();
      await networked.createTags([inst!.id], { k: 'v' });
      const vol = await networked.createVolume({ sizeGiB: 1, zone: sub.zone });
      while ((await networked.describeInstances({ ids: [inst!.id] }))[0]!.state !== 'running' || (await networked.describeVolumes({ ids: [vol.id] }))[0]!.state !== 'available') {
        await world.clock.sleepUs(2_000_000);
      }
      await networked.attachVolume(vol.id, inst!.id, '/dev/sdf');
      await networked.detachVolume(vol.id);
      networked.dispose();
      expect(zones.length).toBeGreaterThan(0);
      expect(subnets.length).toBe(zones.length);
      done = true;
    })();
    try {
      await world.run({ maxEvents: 1_000_000 });
    } finally {
      cloud.dispose();
    }
    expect(done).toBe(true);

    const problems = records.flatMap((r) => checkAnswer(model, r));
    expect(problems).toEqual([]);
    const answered = new Set(records.filter((r) => r.status === 200).map((r) => r.action));
    expect([...EC2_ACTIONS].filter((a) => !answered.has(a))).toEqual([]);
  });
});
