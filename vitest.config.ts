import { defineConfig } from 'vitest/config';

// Workspace packages resolve to their TypeScript sources through the `source` export condition.
const resolve = { conditions: ['source'] };

export default defineConfig({
  resolve,
  ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
  test: {
    reporters: process.env.CI ? ['default', ['json', { outputFile: 'test-results/vitest.json' }]] : ['default'],
    projects: [
      {
        resolve,
        ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
          exclude: ['**/*.docker.test.ts', '**/node_modules/**'],
          testTimeout: 20_000,
        },
      },
      // Attacks on the sandbox and the controller (test/security), and faults (test/faults):
      // real containers, each case asserting the typed refusal and that nothing leaked.
      ...(['security', 'faults'] as const).map((name) => ({
        resolve,
        ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
        test: {
          name,
          include: [`test/${name}/**/*.test.ts`],
          globalSetup: ['./packages/test-support/src/docker-global-setup.ts'],
          testTimeout: 90_000,
          hookTimeout: 120_000,
          maxWorkers: 2,
          minWorkers: 1,
        },
      })),
      {
        resolve,
        ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
        test: {
          name: 'docker',
          include: ['packages/*/test/**/*.docker.test.ts', 'examples/*/test/**/*.docker.test.ts'],
          globalSetup: ['./packages/test-support/src/docker-global-setup.ts'],
          testTimeout: 90_000,
          hookTimeout: 120_000,
          // Two cores: two files at a time keeps the engine busy without starving it.
          maxWorkers: 2,
          minWorkers: 1,
        },
      },
    ],
  },
});
