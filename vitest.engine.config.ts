import { defineConfig } from 'vitest/config';

// The engine-restart fault stops and starts the machine's Docker engine, and the swarm test makes
// it a swarm manager (and starts a second engine beside it): they cannot share a run with any other
// Docker test, so `pnpm test` runs them alone, one file at a time, after the main run (vitest.config.ts).
const resolve = { conditions: ['source'] };

export default defineConfig({
  resolve,
  ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
  test: {
    name: 'engine',
    include: ['test/engine/**/*.test.ts'],
    reporters: process.env.CI ? ['default', ['json', { outputFile: 'test-results/vitest-engine.json' }]] : ['default'],
    globalSetup: ['./packages/test-support/src/docker-global-setup.ts'],
    testTimeout: 240_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
