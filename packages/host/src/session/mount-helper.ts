import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { realpath } from 'node:fs/promises';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { DsError } from '@datastation/protocol';

/**
 * The controller's mount helper: a small long-lived process that binds a folder with nosuid,nodev
 * in three system calls (open_tree, mount_setattr, move_mount: the mount appears with its flags
 * already set) instead of a fork and exec of mount(8) per mount, which from a large Node process
 * costs 15-30 ms each. It is Perl, whose `syscall` reaches the kernel directly and which every
 * Linux distribution ships; no native build. One per state folder, started on first use, ended
 * when the controller exits (its stdin closes). Where it cannot run (no perl, another CPU
 * architecture, a kernel older than 5.12), `mountHelper` gives undefined and callers exec mount(8).
 *
 * What it will do, whoever asks (it runs as root beside the controller; developer code never
 * reaches it: it has no socket, only the pipes of the process that started it):
 * - `bind SRC DST`: SRC and DST absolute, plain (no `.`, `..`, empty or NUL parts), opened with
 *   openat2(RESOLVE_NO_SYMLINKS): no link is followed anywhere in either path. DST is SRC itself
 *   (a folder made a nosuid,nodev mount of itself), or a pool slot's `data` folder,
 *   `<state>/pool/<pool>/<16 hex>/data`, which holds no mount of this helper yet. SRC never lies in
 *   the state folder (no slot, session folder or the helper's own state is handed to a container);
 *   into a slot goes only a folder not owned by root (a data folder handed to a user, as
 *   prepareDataDir does), never `/`, `/etc` or the engine's folders, whatever the controller is asked.
 *   A folder bound on itself only gains nosuid,nodev.
 *   Non-recursive, as `mount --bind`: mounts below SRC do not come along.
 * - `detach PATH`: a lazy unmount (MNT_DETACH, UMOUNT_NOFOLLOW) of a mount this helper made.
 */
const SCRIPT = String.raw`
use strict; use warnings; use POSIX ();
$| = 1;
my ($state) = @ARGV;
my $arch = (POSIX::uname())[4];
my %UMOUNT2 = (x86_64 => 166, aarch64 => 39);
my %O_DIRECTORY = (x86_64 => 0x10000, aarch64 => 0x4000);
my ($OPEN_TREE, $MOVE_MOUNT, $OPENAT2, $MOUNT_SETATTR) = (428, 429, 437, 442);
my ($AT_FDCWD, $AT_EMPTY_PATH, $OPEN_TREE_CLONE, $O_CLOEXEC, $O_PATH) = (-100, 0x1000, 1, 0x80000, 0x200000);
my ($RESOLVE_NO_MAGICLINKS, $RESOLVE_NO_SYMLINKS) = (0x02, 0x04);
my ($MOUNT_ATTR_NOSUID, $MOUNT_ATTR_NODEV) = (0x2, 0x4);
my ($MOVE_MOUNT_F_EMPTY_PATH, $MOVE_MOUNT_T_EMPTY_PATH) = (0x4, 0x40);
my ($MNT_DETACH, $UMOUNT_NOFOLLOW) = (2, 8);
sub errname { my $n = 0 + $!; for (keys %!) { return $_ if $!{$_} } return "E$n" }
unless ($UMOUNT2{$arch} && defined $state && $state =~ m{^/}) { print "unavailable: no system call table for $arch\n"; exit 0 }
for my $nr ($OPEN_TREE, $MOUNT_SETATTR, $OPENAT2) {
  my $e = ''; syscall($nr, -1, $e, 0, 0, 0);
  if ($!{ENOSYS}) { print "unavailable: the kernel lacks the new mount API (Linux 5.12 or newer)\n"; exit 0 }
}
print "ready\n";
my $slot = qr{^\Q$state\E/pool/[^/]+/[0-9a-f]{16}/data$};
my %mine;
sub plain { my ($p) = @_; return $p =~ m{^/} && $p !~ m{//} && $p !~ m{/$} && !grep { $_ eq '.' || $_ eq '..' } split m{/}, substr($p, 1) }
sub openpath {
  my ($p) = @_; my $path = "$p";
  my $how = pack('QQQ', $O_PATH | $O_DIRECTORY{$arch} | $O_CLOEXEC, 0, $RESOLVE_NO_SYMLINKS | $RESOLVE_NO_MAGICLINKS);
  return syscall($OPENAT2, $AT_FDCWD, $path, $how, 24);
}
sub bind_folder {
  my ($src, $dst) = @_;
  return "err EINVAL paths must be absolute and plain" unless defined $src && defined $dst && plain($src) && plain($dst);
  return "err EPERM the source lies in the state folder" if $src eq $state || index($src, "$state/") == 0;
  return "err EPERM the target is neither the source itself nor a pool slot" unless $dst eq $src || $dst =~ $slot;
  return "err EBUSY this helper mounted there already" if $mine{$dst};
  my $s = openpath($src); return "err " . errname() . " opening the source: $!" if $s < 0;
  my @st = stat("/proc/self/fd/$s");
  if ($dst ne $src && (!@st || $st[4] == 0)) { POSIX::close($s); return "err EPERM the source is owned by root: only a folder handed to a user goes into a slot" }
  my $d = openpath($dst); if ($d < 0) { my $r = "err " . errname() . " opening the target: $!"; POSIX::close($s); return $r }
  my $e = ''; my $tree = syscall($OPEN_TREE, $s, $e, $OPEN_TREE_CLONE | $O_CLOEXEC | $AT_EMPTY_PATH);
  my $r;
  if ($tree < 0) { $r = "err " . errname() . " cloning the source: $!" }
  else {
    my $attr = pack('QQQQ', $MOUNT_ATTR_NOSUID | $MOUNT_ATTR_NODEV, 0, 0, 0); my $e2 = '';
    if (syscall($MOUNT_SETATTR, $tree, $e2, $AT_EMPTY_PATH, $attr, 32) != 0) { $r = "err " . errname() . " setting nosuid,nodev: $!" }
    else {
      my ($e3, $e4) = ('', '');
      if (syscall($MOVE_MOUNT, $tree, $e3, $d, $e4, $MOVE_MOUNT_F_EMPTY_PATH | $MOVE_MOUNT_T_EMPTY_PATH) != 0) { $r = "err " . errname() . " attaching: $!" }
      else { $mine{$dst} = 1; $r = "ok" }
    }
    POSIX::close($tree);
  }
  POSIX::close($s); POSIX::close($d);
  return $r;
}
sub detach {
  my ($p) = @_;
  return "err EPERM not a mount of this helper" unless defined $p && $mine{$p};
  my $path = "$p";
  return "err " . errname() . " unmounting: $!" if syscall($UMOUNT2{$arch}, $path, $MNT_DETACH | $UMOUNT_NOFOLLOW) != 0;
  delete $mine{$p};
  return "ok";
}
local $/ = "\0\0";
while (defined(my $request = <STDIN>)) {
  chomp $request;
  my ($op, @args) = split /\0/, $request, -1;
  my $answer = !defined $op ? "err EINVAL empty request" : $op eq 'bind' && @args == 2 ? bind_folder(@args) : $op eq 'detach' && @args == 1 ? detach(@args) : "err EINVAL unknown request";
  $answer =~ s/[\r\n]+/ /g;
  print "$answer\n";
}
`;

export interface MountHelper {
  /** The helper's process id (for tests and logs). */
  readonly pid: number;
  /** Binds `source` onto `target` (itself, or a pool slot's data folder), nosuid,nodev, non-recursive; no link followed. */
  bind(source: string, target: string): Promise<void>;
  /** Lazily unmounts a mount this helper made. */
  detach(path: string): Promise<void>;
}

const helpers = new Map<string, Promise<MountHelper | undefined>>();

/**
 * The mount helper of `stateDir` (started on first use; with `start: false`, only one already
 * running), or undefined where it cannot run, so the caller uses mount(8). A helper that died is
 * started again on the next use.
 */
export async function mountHelper(stateDir: string, options: { start?: boolean } = {}): Promise<MountHelper | undefined> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return undefined;
  // The helper follows no link: it knows the state folder by its real path.
  const real = await realpath(stateDir).catch(() => undefined);
  if (!real) return undefined;
  let helper = helpers.get(real);
  if (!helper && options.start !== false) {
    helper = startHelper(real, () => helpers.delete(real));
    helpers.set(real, helper);
  }
  return helper;
}

function startHelper(stateDir: string, onExit: () => void): Promise<MountHelper | undefined> {
  return new Promise((resolveStart) => {
    let child: ChildProcessByStdio<Writable, Readable, null>;
    try {
      child = spawn('perl', ['-e', SCRIPT, stateDir], { stdio: ['pipe', 'pipe', 'ignore'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
    } catch {
      onExit();
      return resolveStart(undefined);
    }
    const waiting: { resolve: () => void; reject: (error: Error) => void; what: string }[] = [];
    let buffered = '';
    let ready = false;
    let gone = false;
    let chain: Promise<void> = Promise.resolve();
    // Idle, the helper must not keep the controller alive; in use, its answers must come.
    const hold = (on: boolean) => {
      for (const s of [child.stdout, child.stdin] as unknown as Socket[]) on ? s.ref() : s.unref();
      on ? child.ref() : child.unref();
    };
    hold(true); // until it says ready
    const end = (why: string) => {
      if (gone) return;
      gone = true;
      onExit();
      if (!ready) resolveStart(undefined);
      for (const w of waiting.splice(0))
        w.reject(
          new DsError(
            'INTERNAL',
            `The mount helper (pid ${child.pid}) stopped (${why}) while ${w.what}; whether it was done is unknown, and the caller undoes it.`,
          ),
        );
    };
    child.on('error', (error) => end(error.message));
    child.on('exit', (code, signal) => end(signal ? `killed by ${signal}` : `exit code ${code}`));
    child.stdin.on('error', () => undefined);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => {
      buffered += text;
      for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
        const line = buffered.slice(0, at);
        buffered = buffered.slice(at + 1);
        if (!ready) {
          if (line !== 'ready') {
            child.kill();
            return end(line);
          }
          ready = true;
          hold(false);
          resolveStart(helper);
          continue;
        }
        const w = waiting.shift();
        if (!w) continue;
        if (line === 'ok') w.resolve();
        else w.reject(new DsError('CONTAINER_START_FAILED', `The mount helper refused ${w.what}: ${line.replace(/^err /, '')}.`));
      }
      if (waiting.length === 0) hold(false);
    });
    const ask = (what: string, fields: string[]): Promise<void> => {
      const run = () =>
        new Promise<void>((resolve, reject) => {
          if (gone) return reject(new DsError('INTERNAL', `The mount helper (pid ${child.pid}) is gone; ${what} was not done.`));
          if (fields.some((f) => f === '' || f.includes('\0')))
            return reject(new DsError('BAD_REQUEST', `Cannot ask the mount helper for ${what}: an empty path or a NUL byte.`));
          hold(true);
          waiting.push({ resolve, reject, what });
          child.stdin.write(`${fields.join('\0')}\0\0`);
        });
      // One request at a time: each answer is the next line.
      const next = chain.then(run, run);
      chain = next.catch(() => undefined);
      return next;
    };
    const helper: MountHelper = {
      pid: child.pid ?? 0,
      bind: (source, target) => ask(`the bind of ${source} on ${target}`, ['bind', source, target]),
      detach: (path) => ask(`the unmount of ${path}`, ['detach', path]),
    };
  });
}
