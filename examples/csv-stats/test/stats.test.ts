import { describe, expect, it } from 'vitest';
import { parseCsv, records } from '../src/csv.js';
import { columnStats } from '../src/stats.js';

describe('csv', () => {
  it('parses quoted fields, doubled quotes, CRLF and a missing final newline', () => {
    expect(parseCsv('a,b\r\n"x, y","say ""hi"""\n1,\n2,3')).toEqual([
      ['a', 'b'],
      ['x, y', 'say "hi"'],
      ['1', ''],
      ['2', '3'],
    ]);
  });
  it('keys rows by the header', () => {
    expect(records('n,v\n1,2\n').rows).toEqual([{ n: '1', v: '2' }]);
  });
});

describe('columnStats', () => {
  it('computes mean, median, min, max, stddev and counts blanks as missing', () => {
    expect(columnStats(['1', '2', '3', '4', ''])).toEqual({ count: 4, missing: 1, mean: 2.5, min: 1, max: 4, median: 2.5, stddev: 1.118034 });
  });
  it('has nothing to say about a column without numbers', () => {
    expect(columnStats(['a', ''])).toBeUndefined();
  });
});
