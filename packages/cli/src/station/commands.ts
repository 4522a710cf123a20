import type { Argv } from 'yargs';
import type { CommandContext } from '../context.js';

/**
 * The station client commands (`ds principals …`, `ds upload`, `ds grants`, `ds grant`, `ds revoke`,
 * `ds call`, `ds runs`, `ds cancel`, `ds release`, `ds refuse`, `ds settings`, `ds data put|ls|rm|get`, `ds audit`, `ds backup`, `ds restore`), declared here and loaded when they run, as
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

/** A principal's id, the first positional of `ds principals <action> <id>`. */
function principalId<T>(y: Argv<T>) {
  return station(y).positional('id', { type: 'string', demandOption: true, describe: 'The principal id' });
}

const EXPIRES = 'The token stops working then: a duration (90m, 12h, 30d, 8w) or an ISO time; default: never';

export function stationCommands<T extends GlobalFlags>(parser: Argv<T>, context: Context): Argv<T> {
  return parser
    .command('principals', "Manage the station's principals (the admin): add, list, rotate tokens, disable, enable, remove", (y) =>
      y
        .command(
          'add <id>',
          'Add an owner, developer or user; prints its token once (and saves it in the state folder when the station is the local one)',
          (a) =>
            principalId(a)
              .option('role', { choices: ['owner', 'developer', 'user'] as const, demandOption: true, describe: 'What the principal is' })
              .option('expires', { type: 'string', describe: EXPIRES })
              .example('$0 principals add acme --role owner --as admin', 'An owner; then ds ... --as acme')
              .example('$0 principals add ann --role user --expires 30d', 'A user whose token works for 30 days'),
          async (argv) => {
            const { addPrincipalCommand } = await import('../commands/principals.js');
            await addPrincipalCommand(argv, context(argv));
          },
        )
        .command(
          'ls',
          'List the principals with their role, state, creation and token expiry (the admin); an owner gets the users they can grant to',
          (a) =>
            station(a)
              .option('removed', { type: 'boolean', describe: 'Include removed principals (their ids stay taken)' })
              .example('$0 principals ls --as admin', 'Every principal')
              .example('$0 principals ls --as acme', 'The users acme can grant to'),
          async (argv) => {
            const { listPrincipalsCommand } = await import('../commands/principals.js');
            await listPrincipalsCommand(argv, context(argv));
          },
        )
        .command(
          'rotate <id>',
          'Give a principal a new token (shown once); the old one stops working at once, its open event streams and console sessions too',
          (a) =>
            principalId(a)
              .option('expires', { type: 'string', describe: EXPIRES })
              .example('$0 principals rotate ann --expires 30d', "ann's new token, for 30 days"),
          async (argv) => {
            const { rotatePrincipalCommand } = await import('../commands/principals.js');
            await rotatePrincipalCommand(argv, context(argv));
          },
        )
        .command(
          'disable <id>',
          "Refuse a principal's token (saying it is disabled) until it is enabled again; its streams and console sessions end at once",
          (a) => principalId(a).example('$0 principals disable bob', "bob's token is refused"),
          async (argv) => {
            const { standingCommand } = await import('../commands/principals.js');
            await standingCommand('disable')(argv, context(argv));
          },
        )
        .command(
          'enable <id>',
          'Let a disabled principal in again, with the token it had',
          (a) => principalId(a).example('$0 principals enable bob', "bob's token works again"),
          async (argv) => {
            const { standingCommand } = await import('../commands/principals.js');
            await standingCommand('enable')(argv, context(argv));
          },
        )
        .command(
          'rm <id>',
          'Remove a principal (its id stays taken); refused while it has active grants, unless --cascade revokes them first',
          (a) =>
            principalId(a)
              .option('cascade', { type: 'boolean', describe: "Revoke the principal's grants (given, received, or of its packages) first" })
              .example('$0 principals rm bob', 'Refused while bob has active grants')
              .example('$0 principals rm bob --cascade', "Revoke bob's grants, then remove bob"),
          async (argv) => {
            const { removePrincipalCommand } = await import('../commands/principals.js');
            await removePrincipalCommand(argv, context(argv));
          },
        )
        .demandCommand(1, 'Name a principals command: add, ls, rotate, disable, enable, rm.'),
    )
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
            describe: 'A pattern of your files the package may read, under owners/<you>/: * and ? within a name, ** for any folders, [a-z] (repeatable)',
          })
          .option('release', {
            choices: ['release', 'review', 'deny'] as const,
            demandOption: true,
            describe: 'release: the user gets the value; review: you release or refuse each result; deny: your data never reaches this user',
          })
          .option('owner', { type: 'string', describe: 'Your owner id (default: --as, or the owner on your current grants)' })
          .option('force', { type: 'boolean', describe: 'Replace a grant that reads files even with patterns that match none of yours' })
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
          .option('force', { type: 'boolean', describe: 'Replace a grant that reads files even with patterns that match none of yours' })
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
    .command('data', "Owners' datasets and users' data folders on the station: put, ls, rm, get", (y) =>
      y
        .command(
          'put <local> <path>',
          'Upload a file, or a folder of files, to a station path (streamed, with a progress bar on large files); a file there is replaced whole',
          (c) =>
            station(c)
              .positional('local', { type: 'string', demandOption: true, describe: 'A local file or folder' })
              .positional('path', {
                type: 'string',
                demandOption: true,
                describe: "owners/<you>/<path> (an owner's data), or users/<you>/<package>/<path> (an input in your data folder of a package: its /data)",
              })
              .example('$0 data put trips.csv owners/acme/trips/2026.csv --as acme', 'An owner uploads a dataset')
              .example('$0 data put exports/ owners/acme/trips/ --as acme', "A folder's files, below owners/acme/trips/")
              .example(
                '$0 data put input.csv users/ann/trip-stats/input.csv --as ann',
                'A user gives the package an input; its functions read /data/input.csv',
              ),
          async (argv) => {
            const { dataPutCommand } = await import('../commands/data.js');
            await dataPutCommand(argv, context(argv));
          },
        )
        .command(
          'ls [path]',
          "List your files: an owner's with sizes, sha256 and the grants that cover each; a user's folders, or one folder's files",
          (c) =>
            station(c)
              .positional('path', { type: 'string', describe: 'A station path (default: all of yours)' })
              .example('$0 data ls --as acme', "acme's files and the grants that cover each")
              .example('$0 data ls users/ann/trip-stats --as ann', "ann's folder of trip-stats (listed when what it holds is released to her)"),
          async (argv) => {
            const { dataLsCommand } = await import('../commands/data.js');
            await dataLsCommand(argv, context(argv));
          },
        )
        .command(
          'rm <path>',
          "Delete a file or an empty folder; a user's whole folder of a package (users/<you>/<package>) is emptied, which ends what it held",
          (c) =>
            station(c)
              .positional('path', { type: 'string', demandOption: true, describe: 'A station path' })
              .example('$0 data rm owners/acme/trips/2025.csv --as acme', "The next run's read of it is refused")
              .example('$0 data rm users/ann/trip-stats --as ann', "Empty ann's folder of trip-stats"),
          async (argv) => {
            const { dataRmCommand } = await import('../commands/data.js');
            await dataRmCommand(argv, context(argv));
          },
        )
        .command(
          'get <path>',
          "Download a file from your data folder, when what the folder holds is released to you (owners' files are never downloaded)",
          (c) =>
            station(c)
              .positional('path', { type: 'string', demandOption: true, describe: 'users/<you>/<package>/<path>' })
              .option('out', { alias: 'o', type: 'string', describe: 'Where to write it (default: its name, here; - for stdout)' })
              .option('force', { type: 'boolean', describe: 'Replace the output file if it exists' })
              .example('$0 data get users/ann/trip-stats/report.csv --as ann', 'Writes ./report.csv, its sha256 checked'),
          async (argv) => {
            const { dataGetCommand } = await import('../commands/data.js');
            await dataGetCommand(argv, context(argv));
          },
        )
        .demandCommand(1, 'Name a data command: put, ls, rm or get.'),
    )
    .command(
      'audit',
      'Print the audit entries about your data (an owner), or --verify the whole hash chain (anyone)',
      (y) =>
        station(y)
          .option('verify', { type: 'boolean', describe: 'Check the hash chain: exit 0 when it is unbroken, else name the first bad entry' })
          .option('after', { type: 'number', describe: 'Only entries after this seq' })
          .option('limit', { type: 'number', describe: 'At most this many entries' })
          .option('user', { type: 'string', describe: 'Only entries by or about this user' })
          .option('package', { type: 'string', describe: 'Only entries about this package (its digest)' })
          .option('kind', { type: 'string', describe: 'Only entries of this kind (run, call, grant, revoke, release, refuse, upload, data, …)' })
          .option('subject', { type: 'string', describe: 'Only entries about this subject (a run id, a grant id, a digest)' })
          .option('since', { type: 'string', describe: 'Only entries at or after this time (ISO 8601: 2026-05-01 or 2026-05-01T10:00:00Z)' })
          .option('until', { type: 'string', describe: 'Only entries at or before this time (ISO 8601)' })
          .option('export', { type: 'string', describe: 'Write every matching entry as JSON Lines to this file (--export=- for stdout)' })
          .check(
            (a) =>
              ((a.after === undefined || (Number.isInteger(a.after) && a.after >= 0)) &&
                (a.limit === undefined || (Number.isInteger(a.limit) && a.limit > 0))) ||
              '--after and --limit are whole numbers (--limit above 0).',
          )
          .example('$0 audit --as acme', "acme's entries, oldest first")
          .example('$0 audit --as acme --kind run --since 2026-05-01', "acme's runs since May")
          .example('$0 audit --as acme --export audit.jsonl', 'Every entry about your data, as JSON Lines, to a file')
          .example('$0 audit --verify', 'Exit 0 when the chain verifies; 29 (AUDIT_BROKEN) naming the first bad entry when not'),
      async (argv) => {
        const { auditCommand } = await import('../commands/audit.js');
        await auditCommand(argv, context(argv));
      },
    )
    .command(
      'backup <file>',
      "Back up the station (the admin): its database, audit checkpoints and packages (--owners: the owners' files too) into one tar",
      (y) =>
        station(y)
          .positional('file', { type: 'string', demandOption: true, describe: 'The backup file to write (replaced whole, never half written)' })
          .option('owners', { type: 'boolean', describe: "Include the owners' datasets (storage/owners)" })
          .option('db-url', { type: 'string', describe: "A PostgreSQL station's database URL: ds adds its pg_dump to the backup" })
          .example('$0 backup station.tar --as admin', 'Database, checkpoints and packages, taken while runs go on')
          .example('$0 backup station.tar --owners --as admin', "The owners' files as well"),
      async (argv) => {
        const { backupCommand } = await import('../commands/backup.js');
        await backupCommand(argv, context(argv));
      },
    )
    .command(
      'restore <file>',
      "Restore a backup into the state folder of a station that is not running ($DS_STATION_STATE): a new one, or --replace a stopped one's",
      (y) =>
        y
          .positional('file', { type: 'string', demandOption: true, describe: 'A file ds backup wrote' })
          .option('replace', { type: 'boolean', describe: "Replace a stopped station's database, checkpoints and packages" })
          .option('db-url', { type: 'string', describe: 'For a PostgreSQL backup: the database pg_restore restores into' })
          .example('DS_STATION_STATE=~/stations/copy $0 restore station.tar', 'Into a new state folder; then ds up'),
      async (argv) => {
        const { restoreCommand } = await import('../commands/backup.js');
        await restoreCommand(argv, context(argv));
      },
    );
}
