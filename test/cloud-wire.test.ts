import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { USER_DATA_LIMIT_BYTES, parseStagingUserData, stagingUserData } from '../src/providers/aws/user-data.js';
import { Ec2ApiError, Params, errorXml, isoFromEpochMs, parseQueryBody, renderXml } from '../src/providers/emulated/ec2/query.js';
import { createRng } from '../src/world/rng.js';

describe('EC2 Query protocol helpers', () => {
  it('unflattens Name.N lists and Name.Member structures', () => {
    const { action, version, tree } = parseQueryBody('Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3Aspillway%3Arun&Filter.1.Value.1=r1&Filter.1.Value.2=r2&Filter.2.Name=instance-state-name&Filter.2.Value.1=running&InstanceId.1=i-1&InstanceId.2=i-2');
    expect(action).toBe('DescribeInstances');
    expect(version).toBe('2016-11-15');
    const p = new Params(tree);
    expect(p.strList('InstanceId')).toEqual(['i-1', 'i-2']);
    const filters = p.structList('Filter');
    expect(filters.map((f) => [f.str('Name'), f.strList('Value')])).toEqual([['tag:spillway:run', ['r1', 'r2']], ['instance-state-name', ['running']]]);
    expect(() => new Params(tree).int('MaxResults', 5)).toThrow(/MaxResults/);
    expect(() => new Params(parseQueryBody('MinCount=zero').tree).int('MinCount', 1)).toThrow(Ec2ApiError);
  });

  it('renders XML with escaping, <item> lists and empty sets', () => {
    expect(renderXml({ a: 'x<&>"y', set: [{ key: 'k', value: 'v' }], none: [], skip: undefined, n: 3, b: true }))
      .toBe('<a>x&lt;&amp;&gt;&quot;y</a><set><item><key>k</key><value>v</value></item></set><none/><n>3</n><b>true</b>');
    expect(errorXml('Bad<Code>', 'm&m', 'rid')).toContain('<Code>Bad&lt;Code&gt;</Code><Message>m&amp;m</Message></Error></Errors><RequestID>rid</RequestID>');
  });

  it('formats ISO timestamps exactly as Date does, without Date', () => {
    const rng = createRng(9, 'iso');
    const samples = [0, 951_782_400_000, 1_767_571_200_000, 4_102_444_800_000 - 1, ...Array.from({ length: 500 }, () => Math.floor(rng.range(0, 4_102_444_800_000)))];
    for (const ms of samples) expect(isoFromEpochMs(ms)).toBe(new Date(ms).toISOString());
  });
});

describe('staging user data', () => {
  const params = { proxy: { host: '10.0.100.5', port: 10809, exportName: 'web-03', tls: true, caFingerprintSha256: 'ab'.repeat(32) }, vm: { id: 'web-03', name: 'web-03' }, provisioning: { hostname: 'web-03', dns: '10.0.0.2' } };

  it('is a cloud-init write_files document that round-trips', () => {
    const doc = stagingUserData(params);
    expect(doc.startsWith('#cloud-config\nwrite_files:\n  - path: /etc/spillway/staging.json\n')).toBe(true);
    expect(doc).toContain("permissions: '0600'");
    expect(parseStagingUserData(doc)).toEqual(params);
  });

  it('refuses what EC2 would refuse, naming the field', () => {
    expect(() => stagingUserData({ ...params, proxy: { ...params.proxy, port: 70_000 } })).toThrow(/proxy\.port: expected a TCP port/);
    expect(() => stagingUserData({ ...params, proxy: { ...params.proxy, host: '' } })).toThrow(/proxy\.host/);
    const huge = { ...params, provisioning: { blob: 'x'.repeat(USER_DATA_LIMIT_BYTES) } };
    expect(() => stagingUserData(huge)).toThrow(InputError);
    expect(() => stagingUserData(huge)).toThrow(/at most 16384/);
    expect(() => parseStagingUserData('#!/bin/sh\necho hi\n')).toThrow(/not a spillway staging/);
  });
});
