import { defineConfig } from 'vitest/config';

// Workspace packages resolve to their TypeScript sources through the `source` export condition.
const resolve = { conditions: ['source'] };
const ssr = { resolve: { conditions: ['source'], externalConditions: ['source'] } };

/**
 * The suites run again under gVisor (DS_RUNTIME=runsc: dsDockerInit's and the Station's default
 * runtime). Not here: the examples and the CLI (same session code, nothing runtime-specific) and
 * test/faults (engine- and controller-level faults: the runtime does not change them). Sessions
 * on the `network` transport name runc (gVisor is registered with network mode `none` only).
 */
const RUNSC_DOCKER_FILES = [
  'packages/host/test/session.docker.test.ts',
  'packages/host/test/limits.docker.test.ts',
  'packages/host/test/faults.docker.test.ts',
  'packages/host/test/station.docker.test.ts',
  'packages/host/test/station-reaper.docker.test.ts',
  'packages/host/test/reads.docker.test.ts',
  'packages/host/test/sandbox-runtime.docker.test.ts',
  'packages/host/test/package-delivery.docker.test.ts',
  'packages/host/test/pool.docker.test.ts',
  'packages/host/test/mount-helper.docker.test.ts',
  // A run's reads held until its record is durable: the host's gate, with reads over gVisor's host-uds.
  'packages/gatekeeper/test/attack/record-first.docker.test.ts',
];

/**
 * A project against the real engine: the runtime image is built by the global setup; the OCI
 * runtime is always named (the Station would otherwise pick gVisor by itself where the engine has it).
 */
function dockerProject(name: string, include: string[], runtime: 'runc' | 'runsc', timeouts = { testTimeout: 90_000, hookTimeout: 120_000 }) {
  return {
    resolve,
    ssr,
    test: {
      name,
      include,
      env: { DS_RUNTIME: runtime },
      globalSetup: ['./packages/test-support/src/docker-global-setup.ts'],
      ...timeouts,
      // Two cores: two files at a time keeps the engine busy without starving it.
      maxWorkers: 2,
      minWorkers: 1,
    },
  };
}

export default defineConfig({
  resolve,
  ssr,
  test: {
    reporters: process.env.CI ? ['default', ['json', { outputFile: 'test-results/vitest.json' }]] : ['default'],
    projects: [
      {
        resolve,
        ssr,
        test: {
          name: 'unit',
          // test/deploy: the Kubernetes manifests against the schemas and the design (no cluster).
          include: ['packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts', 'test/deploy/**/*.test.ts'],
          // The gatekeeper's store tests run in the `store` project (they need a PostgreSQL).
          exclude: ['**/*.docker.test.ts', '**/node_modules/**', 'packages/gatekeeper/test/**'],
          testTimeout: 20_000,
        },
      },
      // The store's suite, on SQLite and on a PostgreSQL 15 that the global setup starts in a
      // temporary folder (or DS_TEST_PG_URL). A missing PostgreSQL fails the run.
      {
        resolve,
        ssr,
        test: {
          name: 'store',
          include: ['packages/gatekeeper/test/**/*.test.ts'],
          exclude: ['**/*.docker.test.ts', '**/node_modules/**'],
          globalSetup: ['./packages/gatekeeper/test/postgres-global-setup.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      dockerProject('docker', ['packages/*/test/**/*.docker.test.ts', 'examples/*/test/**/*.docker.test.ts'], 'runc'),
      // Attacks on the sandbox and the controller (test/security), and faults (test/faults):
      // real containers, each case asserting the typed refusal and that nothing leaked.
      dockerProject('security', ['test/security/**/*.test.ts'], 'runc'),
      dockerProject('faults', ['test/faults/**/*.test.ts'], 'runc'),
      // Every public package published to a throwaway Verdaccio with changesets, then used from a
      // fresh folder as a developer and an integrator would (test/registry): minutes, not seconds.
      dockerProject('registry', ['test/registry/**/*.test.ts'], 'runc', { testTimeout: 600_000, hookTimeout: 900_000 }),
      // The owners' console in a real browser (Debian's Chromium through playwright-core) against a
      // real gatekeeper, store and function containers (test/browser).
      dockerProject('browser', ['test/browser/**/*.test.ts'], 'runc', { testTimeout: 180_000, hookTimeout: 180_000 }),
      // The same sessions under gVisor (see RUNSC_DOCKER_FILES).
      dockerProject('docker-runsc', RUNSC_DOCKER_FILES, 'runsc'),
      dockerProject('security-runsc', ['test/security/**/*.test.ts'], 'runsc'),
      dockerProject('faults-runsc', ['test/faults/**/*.test.ts'], 'runsc'),
    ],
  },
});
