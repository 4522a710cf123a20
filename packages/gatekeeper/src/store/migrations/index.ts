import type { Migration, MigrationProvider } from 'kysely';
import * as m0001 from './0001-initial.js';
import * as m0002 from './0002-runner.js';
import * as m0003 from './0003-release-scope.js';
import * as m0004 from './0004-principals.js';
import * as m0005 from './0005-data-files.js';
import * as m0006 from './0006-settings.js';
import * as m0007 from './0007-placements.js';

/**
 * Every migration, in code (no folder scanning: the built package and the sources under test run
 * the same list). Numbered; never edit one that has shipped, add the next.
 */
export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_initial': m0001,
  '0002_runner': m0002,
  '0003_release_scope': m0003,
  '0004_principals': m0004,
  '0005_data_files': m0005,
  '0006_settings': m0006,
  '0007_placements': m0007,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => ({ ...MIGRATIONS }),
};
