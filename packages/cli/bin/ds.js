#!/usr/bin/env node
// `ds`. In a checkout of the repository (src/ is beside this file) it runs the CLI from its
// TypeScript sources after `pnpm install`, with no build step, from any folder:
// `node <repo>/packages/cli/bin/ds.js …`. Installed from a registry (dist/ only) it runs the build.
// It prints nothing of its own on stdout, so `ds … --json` stays one JSON document.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

const source = new URL('../src/bin.ts', import.meta.url);

if (existsSync(source)) {
  try {
    // tsx, from this package's devDependencies (resolved beside this file, not from the cwd).
    await import('tsx');
  } catch (error) {
    if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    process.stderr.write(
      `ds runs from source in this checkout and its dependencies are missing: run \`npx -y pnpm@10.34.9 install\` in ` +
        `${new URL('../../..', import.meta.url).pathname}\n`,
    );
    process.exit(1);
  }
  // Workspace packages resolve to their sources through the `source` export condition, as with
  // `node --conditions=source`. Registered after tsx, so it runs first and hands tsx the condition.
  const hook = `export function resolve(specifier, context, next) {
    return next(specifier, context.conditions.includes('source') ? context : { ...context, conditions: ['source', ...context.conditions] });
  }`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
  await import(source.href);
} else {
  try {
    await import('../dist/bin.js');
  } catch (error) {
    if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/bin.js')) {
      process.stderr.write('ds is not built: this package has neither dist/ nor src/. Reinstall @datastation/cli.\n');
      process.exit(1);
    }
    throw error;
  }
}
