import { defineConfig } from 'vitest/config';

// Workspace packages resolve to their TypeScript sources through the `source` export condition.
const resolve = { conditions: ['source'] };

/**
 * The suites run again under gVisor (DS_RUNTIME=runsc: dsDockerInit's and the Station's default
 * runtime). Not here: files about the `network` transport only (gVisor is registered with network
 * mode `none`), the examples and the CLI (same session code, nothing runtime-specific), and
 * test/faults (engine- and controller-level faults: the runtime does not change them). Files that
 * mix transports skip their `network` cases under runsc by a condition on DS_RUNTIME.
 */
const RUNSC_DOCKER_FILES = [
  'packages/host/test/session.docker.test.ts',
  'packages/host/test/limits.docker.test.ts',
  'packages/host/test/faults.docker.test.ts',
  'packages/host/test/station.docker.test.ts',
  'packages/host/test/station-reaper.docker.test.ts',
  'packages/host/test/reads.docker.test.ts',
  'packages/host/test/sandbox-runtime.docker.test.ts',
];

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
          env: { DS_RUNTIME: 'runc' },
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
          // Named, not left to the default: the Station picks gVisor by itself where the engine has it.
          env: { DS_RUNTIME: 'runc' },
          globalSetup: ['./packages/test-support/src/docker-global-setup.ts'],
          testTimeout: 90_000,
          hookTimeout: 120_000,
          // Two cores: two files at a time keeps the engine busy without starving it.
          maxWorkers: 2,
          minWorkers: 1,
        },
      },
      // The same sessions under gVisor (see RUNSC_DOCKER_FILES).
      ...([
        ['docker-runsc', RUNSC_DOCKER_FILES],
        ['security-runsc', ['test/security/**/*.test.ts']],
      ] as const).map(([name, include]) => ({
        resolve,
        ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
        test: {
          name,
          include: [...include],
          env: { DS_RUNTIME: 'runsc' },
          globalSetup: ['./packages/test-support/src/docker-global-setup.ts'],
          testTimeout: 90_000,
          hookTimeout: 120_000,
          maxWorkers: 2,
          minWorkers: 1,
        },
      })),
    ],
  },
});
