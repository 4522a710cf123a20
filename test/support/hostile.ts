import { chmod, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { functionPackage, type TempDir } from '@datastation/test-support';
import { probeBinary } from './probe.js';

/** Where the probe binary sits in the container: in the functions folder (a tmpfs mounted with exec). */
export const PROBE_IN_CONTAINER = '/opt/ds/functions/probe';

/**
 * A hostile developer's function package: each export is one attack made from inside the
 * container, returning what the system answered (an errno name rather than a throw, so a test
 * can assert the exact refusal). `extra` adds exports of the test's own.
 */
export const HOSTILE_FUNCTIONS = `
import { execFile } from 'node:child_process';
import { copyFileSync, chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { connect as netConnect } from 'node:net';
import { networkInterfaces } from 'node:os';
const PROBE = ${JSON.stringify(PROBE_IN_CONTAINER)};

function run(file, argv, timeout = 20000) {
  return new Promise((resolve) => {
    execFile(file, argv, { timeout, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error && !stdout) return resolve({ error: error.code ?? null, signal: error.signal ?? null, stderr: String(stderr).slice(0, 500) });
      try { resolve(JSON.parse(stdout)); } catch { resolve({ error: 'BAD_OUTPUT', stdout: String(stdout).slice(0, 500) }); }
    });
  });
}
export const noop = () => null;
export const echo = (args) => args;
export const sleep = (args) => new Promise((r) => setTimeout(() => r(args.ms), args.ms));
export const probe = (args) => run(PROBE, args.argv, args.timeout);
export const exec = (args) => run(args.file, args.argv ?? ['ids']);
export function copyProbe(args) { copyFileSync(PROBE, args.to); chmodSync(args.to, 0o755); return args.to; }
export function ids() { return { uid: process.getuid(), gid: process.getgid(), euid: process.geteuid(), groups: process.getgroups() }; }
export function status() {
  const fields = readFileSync('/proc/self/status', 'utf8').split('\\n').map((l) => l.split(':\\t'));
  return Object.fromEntries(fields.filter(([k]) => /^(Cap|NoNewPrivs|Seccomp$)/.test(k)).map(([k, v]) => [k, v.trim()]));
}
/** Mount points by target: file system type and options (per-mount and super-block). */
export function mounts() {
  const out = {};
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    out[f[4]] = { options: f[5].split(','), fstype: f[sep + 1], super: f[sep + 3].split(',') };
  }
  return out;
}
export function tryWrite(args) { try { writeFileSync(args.path, 'x'); return 'written'; } catch (e) { return e.code; } }
/** Every socket and every name with "docker" in it on the container's file system (not /proc, /sys). */
export function findSockets() {
  const sockets = [], dockerNames = [];
  const walk = (dir, depth) => {
    let names;
    try { names = readdirSync(dir); } catch { return; }
    for (const name of names) {
      const full = dir === '/' ? '/' + name : dir + '/' + name;
      if (full === '/proc' || full === '/sys') continue;
      if (/docker|containerd/i.test(name)) dockerNames.push(full);
      let info;
      try { info = lstatSync(full); } catch { continue; }
      if (info.isSocket()) sockets.push(full);
      else if (info.isDirectory() && depth < 40) walk(full, depth + 1);
    }
  };
  walk('/', 0);
  const env = Object.keys(process.env).filter((k) => /docker|containerd/i.test(k));
  return { sockets, dockerNames, env };
}
/** PIDs visible in /proc with their uid, command line and state (Z: dead, its parent has not collected it). */
export function processes() {
  return readdirSync('/proc').filter((n) => /^\\d+$/.test(n)).map((pid) => {
    try {
      const uid = Number(/^Uid:\\t(\\d+)/m.exec(readFileSync('/proc/' + pid + '/status', 'utf8'))[1]);
      const stat = readFileSync('/proc/' + pid + '/stat', 'utf8');
      const state = stat.charAt(stat.lastIndexOf(')') + 2);
      return { pid: Number(pid), uid, cmd: readFileSync('/proc/' + pid + '/cmdline', 'utf8').split('\\0').join(' ').trim(), state };
    } catch { return null; }
  }).filter(Boolean);
}
export const self = () => process.pid;
export async function interfaces() { return Object.keys(networkInterfaces()).sort(); }
export function routes() { return readFileSync('/proc/net/route', 'utf8').trim().split('\\n').slice(1).map((l) => l.split('\\t').slice(0, 3).join(' ')); }
export function resolvConf() { try { return readFileSync('/etc/resolv.conf', 'utf8'); } catch (e) { return e.code; } }
export async function resolve(args) {
  try { return (await lookup(args.name, { all: true })).map((a) => a.address); } catch (e) { return e.code; }
}
export function connect(args) {
  return new Promise((resolve) => {
    const s = netConnect({ host: args.host, port: args.port, timeout: args.timeout ?? 1000 });
    s.on('connect', () => { s.destroy(); resolve('connected'); });
    s.on('timeout', () => { s.destroy(); resolve('timeout'); });
    s.on('error', (e) => resolve(e.code));
  });
}
/** Console output of args.mb MiB on stderr, in 1 MiB writes. */
export function flood(args) { const chunk = 'z'.repeat(1 << 20); for (let i = 0; i < args.mb; i++) process.stderr.write(chunk); return 'flooded'; }
export const bytes = (args) => new Uint8Array(args.n).fill(7);
export const text = (args) => 'x'.repeat(args.n);
/** Creates up to args.n tiny files in args.dir; returns how many, and the error that stopped it. */
export function tinyFiles(args) {
  mkdirSync(args.dir, { recursive: true });
  for (let i = 0; i < args.n; i++) {
    try { writeFileSync(args.dir + '/' + i, 'x'); } catch (e) { return { created: i, error: e.code }; }
  }
  return { created: args.n, error: null };
}
/** Writes 1 MiB blocks to args.path until the file system refuses; throws what it said. */
export function fill(args) {
  const fd = openSync(args.path, 'w');
  const block = Buffer.alloc(1 << 20, 1);
  try { for (;;) writeSync(fd, block); } finally { closeSync(fd); }
}
export function killRuntime() { process.kill(process.pid, 'SIGKILL'); return 'still here'; }
`;

/** The hostile package with the probe binary in it, plus `extra` module text appended. */
export async function hostilePackage(extra = ''): Promise<TempDir> {
  const dir = await functionPackage({ 'index.js': HOSTILE_FUNCTIONS + extra });
  const target = join(dir.path, 'probe');
  await copyFile(await probeBinary(), target);
  await chmod(target, 0o755);
  return dir;
}
