import { describe, expect, it } from 'vitest';
import { parseEventData } from '../src/events';
import { homeRoute, NAV, resolvePage } from '../src/routes';

const none = new URLSearchParams();

describe('resolvePage', () => {
  it('gives owners their six pages', () => {
    expect(NAV.owner.map((n) => n.label)).toEqual(['Packages', 'Data', 'Grants', 'Review', 'Audit', 'Sessions']);
    expect(resolvePage('owner', ['data'], none)).toEqual({ page: 'data' });
    expect(resolvePage('owner', ['packages'], none)).toEqual({ page: 'packages' });
    expect(resolvePage('owner', ['packages', 'sha256:ab'], none)).toEqual({ page: 'package', id: 'sha256:ab', file: undefined });
    expect(resolvePage('owner', ['packages', 'sha256:ab', 'files', 'code', 'index.js'], none)).toEqual({
      page: 'package',
      id: 'sha256:ab',
      file: 'code/index.js',
    });
    expect(resolvePage('owner', ['grants'], new URLSearchParams('package=sha256:ab'))).toEqual({ page: 'grants', prefillPackage: 'sha256:ab' });
    expect(resolvePage('owner', ['review'], none)).toEqual({ page: 'review' });
    expect(resolvePage('owner', ['runs'], none)).toBeNull();
  });

  it('gives users their runs and developers their packages', () => {
    expect(homeRoute('user')).toBe('runs');
    expect(resolvePage('user', ['runs'], none)).toEqual({ page: 'runs' });
    expect(resolvePage('user', ['grants'], none)).toBeNull();
    expect(resolvePage('user', ['data'], none)).toEqual({ page: 'data' });
    expect(resolvePage('developer', ['data'], none)).toBeNull();
    expect(resolvePage('developer', ['packages'], none)).toEqual({ page: 'developer' });
    expect(resolvePage('developer', ['audit'], none)).toBeNull();
  });

  it('gives the admin its principals page and nothing of the data', () => {
    expect(homeRoute('admin')).toBe('principals');
    expect(NAV.admin.map((n) => n.label)).toEqual(['Principals']);
    expect(resolvePage('admin', ['principals'], none)).toEqual({ page: 'principals' });
    for (const page of ['packages', 'grants', 'review', 'audit', 'runs', 'sessions']) expect(resolvePage('admin', [page], none)).toBeNull();
    for (const role of ['owner', 'developer', 'user'] as const) expect(resolvePage(role, ['principals'], none)).toBeNull();
  });
});

describe('parseEventData', () => {
  const entry = { seq: 3, at: '2026-05-01T10:00:00Z', actor: 'ann', kind: 'run', subject: 'r', data: {}, owners: [], prevHash: '', hash: '' };
  it('takes an audit entry or a { type, entry } wrapper', () => {
    expect(parseEventData(JSON.stringify(entry))).toEqual({ type: 'audit', entry });
    expect(parseEventData(JSON.stringify({ type: 'audit', entry }))).toEqual({ type: 'audit', entry });
  });
  it('ignores anything else', () => {
    expect(parseEventData('not json')).toBeUndefined();
    expect(parseEventData('null')).toBeUndefined();
    expect(parseEventData('{"kind":"run"}')).toBeUndefined();
  });
});
