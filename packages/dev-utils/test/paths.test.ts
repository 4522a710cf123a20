import { describe, expect, it } from 'vitest';
import { resolveDataPath } from '../src/index.js';
import { useSandbox } from './helpers.js';

describe('resolveDataPath', () => {
  const box = useSandbox();

  it('maps relative paths under the data root', () => {
    expect(resolveDataPath('out/./a.csv', 'write')).toEqual({ kind: 'local', root: box.data, relative: 'out/a.csv', absolute: `${box.data}/out/a.csv` });
    expect(resolveDataPath('.', 'list')).toMatchObject({ kind: 'local', relative: '.', absolute: box.data });
    expect(resolveDataPath('dir/', 'list')).toMatchObject({ kind: 'local', relative: 'dir' });
  });

  it('maps /data and /data/... onto the data root even when DS_DATA_DIR points elsewhere', () => {
    expect(resolveDataPath('/data/x', 'write')).toMatchObject({ kind: 'local', relative: 'x', absolute: `${box.data}/x` });
    expect(resolveDataPath('/data', 'list')).toMatchObject({ kind: 'local', relative: '.' });
    expect(resolveDataPath('//data//a/b', 'read')).toMatchObject({ kind: 'local', relative: 'a/b' });
  });

  it('uses /data when DS_DATA_DIR is unset, read at call time', () => {
    delete process.env.DS_DATA_DIR;
    expect(resolveDataPath('x', 'read')).toMatchObject({ root: '/data', absolute: '/data/x' });
  });

  it('treats other absolute paths as station paths for read only', () => {
    expect(resolveDataPath('/owners//acme/./trips/a.csv', 'read')).toEqual({ kind: 'station', path: '/owners/acme/trips/a.csv' });
    expect(resolveDataPath('/database/a', 'read')).toEqual({ kind: 'station', path: '/database/a' });
    expect(() => resolveDataPath('/etc/x', 'write')).toThrow(expect.objectContaining({ code: 'POLICY_DENIED' }));
    expect(() => resolveDataPath('/etc', 'list')).toThrow(expect.objectContaining({ code: 'POLICY_DENIED' }));
  });

  it.each(['..', '../x', 'a/../../x', 'a/..', '/data/../etc/x', '/owners/../etc/passwd'])('refuses %s with POLICY_DENIED', (p) => {
    for (const op of ['read', 'write', 'list'] as const) {
      expect(() => resolveDataPath(p, op)).toThrow(
        expect.objectContaining({ code: 'POLICY_DENIED', message: expect.stringContaining("'..' segments are not allowed") }),
      );
    }
  });

  it('refuses empty strings, NUL bytes and non-strings with BAD_REQUEST', () => {
    for (const p of ['', 'a\0b', 42, null, undefined, {}]) {
      expect(() => resolveDataPath(p, 'read')).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    }
  });

  it('refuses a write path ending in / with BAD_REQUEST', () => {
    expect(() => resolveDataPath('out/', 'write')).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });
});
