import { describe, expect, it } from 'vitest';
import { closestNames, didYouMean } from '../src/suggest.js';

describe('did you mean', () => {
  const names = ['tripReport', 'payrollReport', 'columnStats', 'peek'];
  it('suggests the names a typo is close to, nearest first', () => {
    expect(closestNames('tripreport', names)).toEqual(['tripReport']);
    expect(closestNames('tirpReport', names)).toEqual(['tripReport']); // a swap counts once
    expect(closestNames('colmnStat', names)).toEqual(['columnStats']);
    expect(closestNames('peak', names)).toEqual(['peek']);
  });
  it('suggests nothing far away, and never the name itself', () => {
    expect(closestNames('summary', names)).toEqual([]);
    expect(closestNames('peek', names)).toEqual([]);
    expect(didYouMean('summary', names)).toBe('');
  });
  it('says it as a sentence', () => {
    expect(didYouMean('peak', names)).toBe(' Did you mean "peek"?');
    expect(didYouMean('ab', ['abc', 'abd'])).toBe(' Did you mean "abc" or "abd"?');
  });
});
