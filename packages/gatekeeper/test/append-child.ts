/**
 * A process that appends to a store as fast as it can, many at once, and prints each entry's seq
 * the moment its append is answered: group-commit.test.ts kills it with SIGKILL mid-stream and
 * checks that every entry it was told of is in the database. Run with the store's URL.
 */
import { writeSync } from 'node:fs';
import { openStore } from '../src/index.js';

const url = process.argv[2];
if (!url) throw new Error('usage: append-child.ts <store url>');
const store = await openStore({ url });
let n = 0;
const lane = async () => {
  for (;;) {
    const entry = await store.audit.append({ actor: 'ann', kind: 'call', subject: `r${n++}`, data: { n }, owners: ['acme'] });
    // Synchronous: the line is out before anything else runs.
    writeSync(1, `${entry.seq}\n`);
  }
};
await Promise.all(Array.from({ length: 32 }, lane));
