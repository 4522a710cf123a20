import { ERROR_CODES } from '@datastation/protocol';
import yargs from 'yargs';
import type { CommandContext } from './context.js';
import { EXIT_OK, EXIT_USAGE, exitCodeOf, formatError, SIGNAL_EXIT, UsageError } from './exit.js';
import { createProgress, progressMode } from './progress.js';
import { stationCommands } from './station/commands.js';
import { CLI_VERSION } from './version.js';

export interface MainIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

interface GlobalFlags {
  json?: boolean | undefined;
  progress?: boolean | undefined;
  quiet?: boolean | undefined;
}

/** Shown by `ds run --help`: the one change `ds run` may make to the caller's files. */
const DATA_OWNER_NOTE = [
  'The function runs as the owner of --data, never as root. A root-owned --data is refused unless',
  '--hand-over-data: then that folder (not its contents) becomes owned by uid 10001, the user',
  'functions run as, and stays so after the run (chown it back if you need to).',
].join('\n');

const EXIT_CODES_HELP = [
  `Exit codes: ${EXIT_OK} ok, ${EXIT_USAGE} usage error,`,
  ...Object.entries(ERROR_CODES).map(([code, { exit }]) => `  ${exit} ${code}`),
  `  ${SIGNAL_EXIT.SIGINT} interrupted (SIGINT), ${SIGNAL_EXIT.SIGTERM} terminated (SIGTERM)`,
].join('\n');

/**
 * The `ds` command line. Commands are declared here (options, help, examples) and loaded only when
 * they run, so `ds --help` never loads esbuild or dockerode. Commands throw `DsError`s; this one
 * handler prints them and turns them into exit codes (exit.ts).
 */
export async function main(args: string[], io: MainIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const context = (flags: GlobalFlags): CommandContext => ({
    json: Boolean(flags.json),
    progress: createProgress(progressMode(flags, io.stderr), io.stderr),
    out: (text) => void io.stdout.write(text),
    err: (text) => void io.stderr.write(text),
  });

  const parser = yargs(args)
    .scriptName('ds')
    .usage(
      '$0 <command> [options]\n\nDevelop Data Station functions: scaffold a package, run it in a hardened container, package it, verify a package; ' +
        'upload it to a station, grant it, call it, review its results and audit it.',
    )
    .option('json', { type: 'boolean', describe: 'Print one JSON document on stdout', global: true })
    .option('progress', { type: 'boolean', describe: 'Print progress lines on stderr even when it is not a terminal', global: true })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'No progress output', global: true })
    .command(
      'init <dir>',
      'Create a function package: two functions, a connector, a test and a README',
      (y) =>
        y
          .positional('dir', { type: 'string', demandOption: true, describe: 'A new or empty folder' })
          .option('name', { type: 'string', describe: 'Package name (default: from the folder name)' })
          .option('from', {
            type: 'string',
            describe:
              'A checkout of Data Station (its packages are built and packed) or a folder of .tgz files made by pnpm pack: @datastation/* are copied from there into vendor/ (default: the checkout ds runs from, if it runs from one)',
          })
          .option('registry', { type: 'boolean', describe: 'Name @datastation/* by version, for the npm registry, even when ds runs from a checkout' })
          .conflicts('from', 'registry')
          .example('$0 init word-tools', 'Scaffold ./word-tools')
          .example('$0 init fns --name @acme/word-tools', 'Scaffold ./fns with a scoped name')
          .example('$0 init word-tools --from ~/datastation', 'Scaffold ./word-tools with @datastation/* packed from that checkout')
          .epilog(
            "Outside a registry: run from a checkout (or with --from), ds init puts @datastation/* into the new package's vendor/ and names them in package.json as file:vendor/..., so npm install takes them from there; the package installs anywhere, without the checkout. " +
              'Run as root, ds init gives the data/ folder it creates (the folder alone) to uid 10001, the user functions run as, so that ds run can use it.',
          ),
      async (argv) => {
        const { initCommand } = await import('./commands/init.js');
        await initCommand(argv, context(argv));
      },
    )
    .command('image', 'Manage the runtime image', (y) =>
      y
        .command(
          'build',
          'Build datastation/runtime:latest and :<version> (reused when nothing changed)',
          (b) =>
            b
              .option('offline', { type: 'boolean', describe: 'Build the base from the local Node binary; no registry needed' })
              .option('force', { type: 'boolean', describe: 'Build even when an image with the same inputs exists' })
              .example('$0 image build --offline', 'Build with no registry')
              .example('$0 image build --json', 'Print {id, tags, base, built}'),
          async (argv) => {
            const { imageBuildCommand } = await import('./commands/image-build.js');
            await imageBuildCommand(argv, context(argv));
          },
        )
        .demandCommand(1, 'Name an image command: build.'),
    )
    .command(
      'run <target> <name>',
      'Call one function (or connector) in a fresh hardened container and print its value as JSON',
      (y) =>
        y
          .positional('target', { type: 'string', demandOption: true, describe: 'A function package folder or a .dspkg file' })
          .positional('name', { type: 'string', demandOption: true, describe: 'The function (or, with --connector, connector) to call' })
          .option('data', { type: 'string', demandOption: true, describe: 'Host folder mapped to /data (read-write)' })
          .option('args', { type: 'string', describe: 'Arguments as JSON (default null)' })
          .option('timeout', { type: 'number', describe: 'Deadline of the call in ms (default 30000)' })
          .option('memory', { type: 'number', describe: "The container's memory limit in MiB (default 512)" })
          .option('image', { type: 'string', describe: 'Runtime image (default: datastation/runtime:latest; a .dspkg runs on the image id it records)' })
          .option('runtime', {
            choices: ['runc', 'runsc'] as const,
            describe: 'Container runtime: runc (default, or DS_RUNTIME) or runsc (gVisor, when the engine has it)',
          })
          .option('connector', {
            type: 'boolean',
            describe: "Run a connector from the connectors module, in the container beside the functions; its run() calls the package's functions there",
          })
          .option('hand-over-data', {
            type: 'boolean',
            describe: 'When --data is owned by root: give that folder (not its contents) to the uid functions run as (10001)',
          })
          .option('read-root', { type: 'string', describe: 'Station storage that station reads (read("/owners/...")) are served from' })
          .option('allow', { type: 'string', array: true, describe: 'A glob under --read-root the function may read (repeatable)' })
          .implies('allow', 'read-root')
          .implies('read-root', 'allow')
          .check(
            (a) => a.timeout === undefined || (Number.isInteger(a.timeout) && a.timeout > 0) || '--timeout must be a whole number of milliseconds above 0.',
          )
          .check((a) => a.memory === undefined || (Number.isInteger(a.memory) && a.memory > 0) || '--memory must be a whole number of MiB above 0.')
          .example(`$0 run . wordCount --data data --args '{"file":"words.txt"}'`, 'Call wordCount with /data = ./data')
          .example(`$0 run word-tools-0.1.0.dspkg hello --data /tmp/d --json`, 'Run from a verified package; compact JSON')
          .example(`$0 run . summary --connector --data data --args '{"file":"words.txt"}'`, 'Run a connector')
          .example(`$0 run . stats --data data --read-root station --allow 'owners/acme/*.csv'`, 'Grant reads of station/owners/acme/*.csv')
          .epilog(DATA_OWNER_NOTE),
      async (argv) => {
        const { runCommand } = await import('./commands/run.js');
        await runCommand(argv, context(argv));
      },
    )
    .command(
      'package <dir>',
      'Bundle a function package into a deterministic .dspkg bound to an image id',
      (y) =>
        y
          .positional('dir', { type: 'string', demandOption: true, describe: 'The function package folder' })
          .option('image', { type: 'string', describe: 'Image the package runs on (default datastation/runtime:latest); its id is recorded' })
          .option('out', { alias: 'o', type: 'string', describe: 'Output file (default ./<name>-<version>.dspkg)' })
          .example('$0 package word-tools', 'Write ./word-tools-0.1.0.dspkg')
          .example('$0 package . -o dist/fns.dspkg --json', 'Print {file, sha256, bytes, functions, ...}'),
      async (argv) => {
        const { packageCommand } = await import('./commands/package.js');
        await packageCommand(argv, context(argv));
      },
    )
    .command(
      'verify <pkg>',
      'Check a .dspkg: safe unpack, every sha256, the manifest, and the image id on this engine',
      (y) =>
        y
          .positional('pkg', { type: 'string', demandOption: true, describe: 'The .dspkg file' })
          .example('$0 verify word-tools-0.1.0.dspkg', 'Exit 0 when intact; 16 when changed, 22 when the image differs'),
      async (argv) => {
        const { verifyCommand } = await import('./commands/verify.js');
        await verifyCommand(argv, context(argv));
      },
    );
  parser
    .command(
      'up',
      "Stand up the simulated station on this machine (docker compose): builds what is missing, prints the demo principals' tokens",
      (y) =>
        y
          .option('name', {
            type: 'string',
            default: process.env.DS_STATION_NAME || undefined,
            describe: 'Compose project and station name (default: DS_STATION_NAME, then datastation)',
          })
          .option('port', {
            type: 'number',
            default: process.env.DS_PORT ? Number(process.env.DS_PORT) : undefined,
            describe: 'Publish the API on 127.0.0.1:<port> (default: DS_PORT, then 8080)',
          })
          .option('runtime', {
            choices: ['runc', 'runsc'] as const,
            describe: 'Sandbox runtime of the function containers (default: gVisor where the engine has it)',
          })
          .option('offline', { type: 'boolean', describe: 'Build the runtime image on the offline base without trying a registry' })
          .option('db-url', { type: 'string', describe: 'A PostgreSQL URL for the store (default: SQLite in the station folder)' })
          .option('tls', {
            type: 'boolean',
            describe: 'HTTPS with a self-signed certificate for 127.0.0.1 and localhost (made once, no openssl needed, kept in the state folder; ds trusts it)',
          })
          .option('tls-cert', { type: 'string', describe: 'HTTPS with this PEM certificate (chain) ...' })
          .option('tls-key', { type: 'string', describe: '... and its PEM private key' })
          .check(
            (a) =>
              ((a.tlsCert === undefined) === (a.tlsKey === undefined) && !(a.tls && a.tlsCert !== undefined)) ||
              '--tls-cert and --tls-key go together, and make --tls needless: pass either --tls or both.',
          )
          .example('$0 up', 'The station at http://127.0.0.1:8080, state in $DS_STATION_STATE or ~/.local/state/datastation/station')
          .example('$0 up --tls', 'The station at https://127.0.0.1:8080 with a self-signed certificate ds trusts')
          .example('$0 up --port 8081 --name demo2', 'A second station beside the first'),
      async (argv) => {
        const { upCommand } = await import('./commands/stack.js');
        await upCommand(argv, context(argv));
      },
    )
    .command(
      'down',
      "Stop the station ds up started; --volumes also removes its data (database, owners' files, tokens)",
      (y) =>
        y
          .option('name', {
            type: 'string',
            default: process.env.DS_STATION_NAME || undefined,
            describe: 'The station (default: the one the state folder records)',
          })
          .option('volumes', { type: 'boolean', describe: "Also remove the station's data" })
          .example('$0 down', 'Stop it, keep its data for the next ds up')
          .example('$0 down --volumes', 'Stop it and remove everything it kept'),
      async (argv) => {
        const { downCommand } = await import('./commands/stack.js');
        await downCommand(argv, context(argv));
      },
    )
    .command('swarm', 'One station across the nodes of a Docker Swarm (a two-node swarm on this machine, for trial)', (y) =>
      y
        .command(
          'init',
          "On a swarm manager: the station's secrets (a CA, the gatekeepers' and agents' certificates for mutual TLS, PostgreSQL's password)",
          (b) =>
            b
              .option('name', {
                type: 'string',
                default: process.env.DS_STATION_NAME || undefined,
                describe: 'The station (default datastation): prefixes the secrets',
              })
              .example('$0 swarm init', 'Make datastation-ca.crt, datastation-agent.key, ... as swarm secrets'),
          async (argv) => {
            const { swarmInitCommand } = await import('./commands/swarm.js');
            await swarmInitCommand(argv, context(argv));
          },
        )
        .command(
          'up',
          'As root: a two-node swarm on this machine (this engine, and a second one in its own network namespace with gVisor), the station deployed on it',
          (b) =>
            b
              .option('name', { type: 'string', default: process.env.DS_STATION_NAME || undefined, describe: 'Stack and station name (default datastation)' })
              .option('port', {
                type: 'number',
                default: process.env.DS_PORT ? Number(process.env.DS_PORT) : undefined,
                describe: 'The port each gatekeeper publishes on its node (default: DS_PORT, then 8080)',
              })
              .option('offline', { type: 'boolean', describe: 'Build the runtime image on the offline base without trying a registry' })
              .option('agent-image', {
                type: 'string',
                describe: "An image on this engine that runs the node agent, for the stack's agent service (default: datastation/agent:latest, built here)",
              })
              .example('$0 swarm up', 'Gatekeepers at http://127.0.0.1:8080 and http://10.213.0.2:8080, state in $DS_STATION_STATE'),
          async (argv) => {
            const { swarmUpCommand } = await import('./commands/swarm.js');
            await swarmUpCommand(argv, context(argv));
          },
        )
        .command(
          'down',
          'Remove what ds swarm up made: the stack, the secrets, the second engine, its namespace and veth, and the swarm; --volumes also the data',
          (b) => b.option('volumes', { type: 'boolean', describe: "Also remove the station's data (PostgreSQL's volume, storage, tokens, the CA)" }),
          async (argv) => {
            const { swarmDownCommand } = await import('./commands/swarm.js');
            await swarmDownCommand(argv, context(argv));
          },
        )
        .demandCommand(1, 'Name a swarm command: init, up or down.'),
    );
  parser.command(
    'certs <dir>',
    "Make a station's mutual-TLS certificates as files (for Kubernetes' Secrets): a CA, the gatekeepers' and the agents' pairs",
    (y) =>
      y
        .positional('dir', { type: 'string', demandOption: true, describe: 'Where ca.crt, gatekeeper.crt/.key and agent.crt/.key go (made 0700 if missing)' })
        .option('ca-key', {
          type: 'string',
          demandOption: true,
          describe: "Where the CA's private key goes, outside <dir>: no pod needs it; keep it to issue certificates later",
        })
        .option('agent-dns', {
          type: 'string',
          array: true,
          describe: "A DNS name (or IP address) the agents' certificate names, e.g. their Service's; repeat for more",
        })
        .option('name', { type: 'string', describe: "The station name in the certificates' common names (default datastation)" })
        .option('force', { type: 'boolean', describe: 'Replace files that exist (a new CA: every pod needs the new set)' })
        .example(
          '$0 certs deploy/kubernetes/secrets --ca-key ~/datastation-ca/ca.key --agent-dns datastation-agent.datastation-nodes.svc.cluster.local',
          "The files deploy/kubernetes's kustomization makes its TLS Secrets from",
        )
        .epilog("The role is the subject's OU (gatekeeper, agent), as the agent and the gatekeeper check it. Keys are written 0600. No openssl needed."),
    async (argv) => {
      const { certsCommand } = await import('./commands/certs.js');
      await certsCommand(argv, context(argv));
    },
  );
  parser.command(
    'agent',
    "Run this node's agent: the station's gatekeepers run sessions on this node's Docker engine through it (wss, mutual TLS)",
    (y) =>
      y
        .option('listen', { type: 'string', describe: 'host:port to listen on (default: DS_AGENT_LISTEN, then 0.0.0.0:7443)' })
        .option('id', { type: 'string', describe: "The agent's id (default: DS_AGENT_ID, then the hostname; a swarm stack gives the node id)" })
        .option('storage', { type: 'string', describe: "The station storage, at the gatekeepers' path (default: DS_STORAGE)" })
        .option('state-dir', { type: 'string', describe: 'Session folders (default: DS_STATE_DIR, then the host default)' })
        .option('tls-cert', { type: 'string', describe: "The agent's certificate, PEM (default: DS_TLS_CERT)" })
        .option('tls-key', { type: 'string', describe: "The agent's key, PEM (default: DS_TLS_KEY)" })
        .option('tls-ca', { type: 'string', describe: "The station's CA, PEM (default: DS_TLS_CA)" })
        .example('$0 agent --storage /srv/station --tls-cert agent.pem --tls-key agent.key --tls-ca ca.pem', 'Serve this node on 0.0.0.0:7443')
        .epilog('Only clients with a certificate the station CA signed for the gatekeeper role are let in. SIGTERM closes its sessions and exits.'),
    async (argv) => {
      const { agentCommand } = await import('./commands/agent.js');
      await agentCommand(argv, context(argv));
    },
  );
  // The station client commands (upload, grants, grant, revoke, call, runs, release, refuse, audit).
  stationCommands(parser, context);
  parser
    .demandCommand(1, 'Name a command.')
    .recommendCommands()
    .strict()
    .help('help')
    .alias('help', 'h')
    .version('version', 'Show the ds version', CLI_VERSION)
    .epilogue(EXIT_CODES_HELP)
    .wrap(io.stdout.isTTY ? Math.min(110, io.stdout.columns ?? 100) : null)
    .exitProcess(false)
    .fail((message, error) => {
      // A command's own failure arrives as `error`; yargs' validation (a YError, or the string a
      // .check returned) is a usage error.
      const own = error instanceof Error && error.name !== 'YError';
      throw own ? error : new UsageError(message || String((error as unknown) ?? 'Invalid command line.'));
    });

  try {
    await parser.parseAsync();
    return EXIT_OK;
  } catch (error) {
    io.stderr.write(formatError(error));
    return exitCodeOf(error);
  }
}
