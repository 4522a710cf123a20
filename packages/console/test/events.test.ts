import { describe, expect, it } from 'vitest';
import { parseEventData, parseProgressData } from '../src/events';

describe('the live events', () => {
  it('reads a progress event, or that it is withheld, and drops anything else', () => {
    expect(parseProgressData('{"run":"r1","progress":{"fraction":0.5,"message":"<b>half</b>","at":"2026-01-01T00:00:00.000Z"}}')).toEqual({
      type: 'progress',
      progress: { run: 'r1', progress: { fraction: 0.5, message: '<b>half</b>', at: '2026-01-01T00:00:00.000Z' } },
    });
    expect(parseProgressData('{"run":"r1","withheld":"Progress withheld"}')).toEqual({
      type: 'progress',
      progress: { run: 'r1', withheld: 'Progress withheld' },
    });
    for (const bad of ['nope', 'null', '{}', '{"run":1}', '{"run":"r1","progress":{"fraction":"x"}}', '{"run":"r1","withheld":3}'])
      expect(parseProgressData(bad)).toBeUndefined();
    // An audit entry is not progress, and progress is not an audit entry.
    expect(parseEventData('{"run":"r1","withheld":"x"}')).toBeUndefined();
  });
});
