#!/usr/bin/env node
// The installed `ds`: runs the built CLI. In this repository, `pnpm ds` runs it from source instead.
try {
  await import('../dist/bin.js');
} catch (error) {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/bin.js')) {
    process.stderr.write('ds is not built yet: run `pnpm build` (or use `pnpm ds` at the repository root).\n');
    process.exit(1);
  }
  throw error;
}
