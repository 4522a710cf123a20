import type { Argv } from 'yargs';
import type { CommandContext } from '../context.js';

/**
 * The station client commands (`ds upload`, `ds grants`, `ds grant`, `ds revoke`, `ds call`,
 * `ds runs`, `ds cancel`, `ds release`, `ds refuse`, `ds settings`, `ds audit`), declared here and loaded when they run, as
 * main.ts does for the others. They talk to a gatekeeper over HTTP only (station/client.ts).
 */
interface GlobalFlags {
  json?: boolean | undefined;
  progress?: boolean | undefined;
  quiet?: boolean | undefined;
}
type Context = (flags: GlobalFlags) => CommandContext;

/** The flags every station command takes: where the station is and who is asking. */
function station<T>(y: Argv<T>) {
  return y
    .option('station', { type: 'string', describe: 'Gatekeeper URL (default: DS_STATION_URL, then the state folder ds up wrote, then http://127.0.0.1:8080)' })
    .option('token', { type: 'string', describe: 'Bearer token (default: --as, then DS_TOKEN, then the state folder)' })
    .option('as', {
      type: 'string',
      describe: 'Act as this principal: its token from the state folder ($DS_STATION_STATE or ~/.local/state/datastation/station/tokens/<principal>)',
    });
}

export function stationCommands<T extends GlobalFlags>(parser: Argv<T>, context: Context): Argv<T> {
  return parser
    .command(
      'upload <pkg>',
      'Upload a .dspkg to the station (a developer); prints its digest, which names it from then on',
      (y) =>
        station(y)
          .positional('pkg', { type: 'string', demandOption: true, describe: 'The .dspkg file (ds package writes one)' })
          .example('$0 upload trip-stats-1.0.0.dspkg --as dev', 'Upload as the demo developer')
          .example('$0 upload fns.dspkg --station http://10.0.0.5:8080 --token "$TOKEN" --json', 'Print the package as JSON'),
      async (argv) => {
        const { uploadCommand } = await import('../commands/upload.js');
        await uploadCommand(argv, context(argv));
      },
    )
    .command(
      'grants',
      "List grants: an owner's own, the grants naming a user, or those of a developer's packages",
      (y) =>
        station(y)
          .option('revoked', { type: 'boolean', describe: 'Include revoked grants' })
          .example('$0 grants --as acme', "The owner acme's grants")
          .example('$0 grants --as ann --json', 'The grants naming the user ann, as JSON'),
      async (argv) => {
        const { grantsCommand } = await import('../commands/grants.js');
        await grantsCommand(argv, context(argv));
      },
    )
    .command(
      'grant <package>',
      'Grant a package to a user (an owner): which of your files it may read, and whether results are released, reviewed or denied',
      (y) =>
        station(y)
          .positional('package', {
            type: 'string',
            demandOption: true,
            describe: 'Digest (sha256:…), a unique digest prefix, name@version, name, or the .dspkg file',
          })
          .option('user', { type: 'string', demandOption: true, describe: 'The user the grant is for' })
          .option('read', {
            type: 'string',
            array: true,
            demandOption: true,
            describe: 'A glob of your data the package may read, under owners/<you>/ (repeatable)',
          })
          .option('release', {
            choices: ['release', 'review', 'deny'] as const,
            demandOption: true,
            describe: 'release: the user gets the value; review: you release or refuse each result; deny: nothing runs',
          })
          .option('owner', { type: 'string', describe: 'Your owner id (default: --as, or the owner on your current grants)' })
          .option('max-run', {
            type: 'string',
            describe: "End runs under this grant TIMEOUT after this long (e.g. 10m), if shorter than the station's maxRunMs",
          })
          .example(
            "$0 grant trip-stats --user ann --read 'owners/acme/trips/*.csv' --release review --as acme",
            'Let ann run trip-stats on the trips; acme reviews each result',
          ),
      async (argv) => {
        const { grantCommand } = await import('../commands/grants.js');
        await grantCommand(argv, context(argv));
      },
    )
    .command(
      'revoke <package>',
      "Revoke your grants of a package to a user (an owner); the user's next call is NOT_APPROVED",
      (y) =>
        station(y)
          .positional('package', { type: 'string', demandOption: true, describe: 'Digest, a unique digest prefix, name@version, name, or the .dspkg file' })
          .option('user', { type: 'string', demandOption: true, describe: 'The user whose grant goes' })
          .option('owner', { type: 'string', describe: 'Your owner id (default: --as, or the owner on your current grants)' })
          .example('$0 revoke trip-stats --user ann --as acme', "Revoke acme's grant of trip-stats to ann"),
      async (argv) => {
        const { revokeCommand } = await import('../commands/grants.js');
        await revokeCommand(argv, context(argv));
      },
    )
    .command(
      'call <package> <name>',
      'Run a connector (or, with --function, a function) of a package on the station, on the data granted to you',
      (y) =>
        station(y)
          .positional('package', { type: 'string', demandOption: true, describe: 'Digest, a unique digest prefix, name@version, name, or the .dspkg file' })
          .positional('name', { type: 'string', demandOption: true, describe: 'The connector (or, with --function, function) to run' })
          .option('args', { type: 'string', describe: 'Arguments as JSON (default null)' })
          .option('function', { type: 'boolean', describe: '<name> is a function, not a connector' })
          .option('wait', {
            type: 'boolean',
            default: true,
            describe: 'Follow the run to its end, its progress as a bar on stderr (--no-wait: print the run id at once)',
          })
          .option('timeout', { type: 'string', describe: "End the run TIMEOUT after this long (e.g. 90s, 10m), if shorter than the grants' and the station's" })
          .example(
            `$0 call trip-stats summary --args '{"path":"/owners/acme/trips/2026.csv"}' --as ann`,
            'Prints the value, or the run id when the owner reviews it first',
          )
          .example(`$0 call trip-stats total --function --args '{}' --json`, 'Print the run { id, status, value? } as JSON')
          .example('$0 call trip-stats yearly --no-wait --as ann', 'Print the run id at once; ds runs <id> follows it, ds cancel <id> stops it'),
      async (argv) => {
        const { callCommand } = await import('../commands/call.js');
        await callCommand(argv, context(argv));
      },
    )
    .command(
      'runs [id]',
      'List your runs (a user) or the runs you review (an owner); with an id, that run and its value',
      (y) =>
        station(y)
          .positional('id', { type: 'string', describe: 'A run id: show that run' })
          .option('status', { choices: ['running', 'released', 'pending', 'refused', 'denied', 'failed'] as const, describe: 'Only runs in this state' })
          .option('limit', { type: 'number', describe: 'At most this many (default 100)' })
          .example('$0 runs --as acme --status pending', 'The staged results waiting for acme')
          .example('$0 runs 3f2a… --as ann', 'One run: its status, and its value once released'),
      async (argv) => {
        const { runsCommand } = await import('../commands/runs.js');
        await runsCommand(argv, context(argv));
      },
    )
    .command(
      'cancel <run>',
      'Cancel one of your runs (a user): queued or running, it ends CANCELLED, recorded with the reads it made',
      (y) =>
        station(y)
          .positional('run', { type: 'string', demandOption: true, describe: 'The run id (ds call --no-wait prints it; ds runs lists them)' })
          .example('$0 cancel 3f2a… --as ann', 'Stop the run; ds runs 3f2a… shows it CANCELLED'),
      async (argv) => {
        const { cancelCommand } = await import('../commands/runs.js');
        await cancelCommand(argv, context(argv));
      },
    )
    .command(
      'settings',
      "Show the station's settings; --max-run sets the longest a run may last (the admin)",
      (y) =>
        station(y)
          .option('max-run', { type: 'string', describe: 'Set the run ceiling, e.g. 30m or 2h (at most the station ceiling)' })
          .example('$0 settings', 'How long runs may last here')
          .example('$0 settings --max-run 30m --as admin', 'Runs end TIMEOUT after 30 minutes (a grant or a call may ask for less)'),
      async (argv) => {
        const { settingsCommand } = await import('../commands/settings.js');
        await settingsCommand(argv, context(argv));
      },
    )
    .command(
      'release <run>',
      'Release a staged result to its user (a reviewing owner)',
      (y) =>
        station(y)
          .positional('run', { type: 'string', demandOption: true, describe: 'The run id (ds runs --status pending)' })
          .example('$0 release 3f2a… --as acme', 'The user sees the value once every reviewer released it'),
      async (argv) => {
        const { decideCommand } = await import('../commands/runs.js');
        await decideCommand('release')(argv, context(argv));
      },
    )
    .command(
      'refuse <run>',
      'Refuse a staged result (a reviewing owner): its user never sees the value',
      (y) =>
        station(y)
          .positional('run', { type: 'string', demandOption: true, describe: 'The run id (ds runs --status pending)' })
          .example('$0 refuse 3f2a… --as acme', 'Refuse the result'),
      async (argv) => {
        const { decideCommand } = await import('../commands/runs.js');
        await decideCommand('refuse')(argv, context(argv));
      },
    )
    .command(
      'audit',
      'Print the audit entries about your data (an owner), or --verify the whole hash chain (anyone)',
      (y) =>
        station(y)
          .option('verify', { type: 'boolean', describe: 'Check the hash chain: exit 0 when it is unbroken, else name the first bad entry' })
          .option('after', { type: 'number', describe: 'Only entries after this seq' })
          .option('limit', { type: 'number', describe: 'At most this many entries' })
          .check(
            (a) =>
              ((a.after === undefined || (Number.isInteger(a.after) && a.after >= 0)) &&
                (a.limit === undefined || (Number.isInteger(a.limit) && a.limit > 0))) ||
              '--after and --limit are whole numbers (--limit above 0).',
          )
          .example('$0 audit --as acme', "acme's entries, oldest first")
          .example('$0 audit --verify', 'Exit 0 when the chain verifies; 23 naming the first bad entry when not'),
      async (argv) => {
        const { auditCommand } = await import('../commands/audit.js');
        await auditCommand(argv, context(argv));
      },
    );
}
