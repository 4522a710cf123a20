import type { Role } from '@datastation/protocol/station';

/** The demo principals a fresh station gets: their tokens are drawn at first start, never fixed here. */
export const DEMO_PRINCIPALS: readonly { id: string; role: Role }[] = [
  { id: 'acme', role: 'owner' },
  { id: 'dev', role: 'developer' },
  { id: 'ann', role: 'user' },
];

/** The demo owner's data, written once when `owners/acme` does not exist yet. */
export const DEMO_DATA: Readonly<Record<string, string>> = {
  'owners/acme/trips/2026.csv': 'id,duration\n1,10\n2,20\n3,12\n',
  'owners/acme/reviewed/salaries.csv': 'id,salary\n1,5000\n2,6200\n',
  'owners/acme/private/notes.txt': 'not granted to anyone\n',
};
