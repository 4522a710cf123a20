import { Worker, type WorkerOptions } from 'node:worker_threads';
import { DsError, type ErrorCode } from '@datastation/protocol/errors';
import type { RuntimeConfig } from './config.js';
import type { ResultKind } from '@datastation/protocol/result-frames';
import {
  type CallInput,
  type CallToWorker,
  checkFromWorker,
  type ReadFromWorker,
  type ReadToWorker,
  type RunFromWorker,
  type RunToWorker,
  type SmallResultKind,
  type ToWorker,
  type WorkerInit,
} from './worker-messages.js';

/**
 * How a call ended. `frame` is a result frame whose header the server writes; `claimed` marks a
 * code that came from the worker, which the server checks before the host sees it.
 */
export type CallOutcome =
  | { ok: true; kind: ResultKind; frame: Uint8Array }
  | { ok: true; kind: SmallResultKind; text: string }
  | { ok: false; code: ErrorCode; message: string; stack?: string; claimed?: true };

/** What a package offers: its functions and its connectors, each sorted. */
export interface PackageNames {
  functions: string[];
  connectors: string[];
}

/** What the pool tells the server; set once the server exists (the pool starts first, for speed). */
export interface WorkerPoolHooks {
  onLog: (id: string | null, stream: 'stdout' | 'stderr', data: string) => void;
  /** A station read request from a worker; answer through `worker.postRead`. */
  onRead: (worker: ReadPeer, message: ReadFromWorker) => void;
  /** A connector's `run` from the worker that runs that connector's call; answer through `worker.postRun`. */
  onRun: (worker: ReadPeer, message: RunFromWorker) => void;
  /** A call's progress, from the worker that runs that call (not yet bounded: the worker is not trusted). */
  onProgress: (id: string, fraction: number, message: string | undefined) => void;
  /** A worker is gone: its reads will never be consumed. */
  onWorkerExit: (worker: ReadPeer) => void;
  /** Called when a worker is retired: processes the function started must not outlive it. */
  onRetire?: () => void;
  /**
   * A call found no worker, and none could start (`new Worker` failed: EAGAIN when the container's
   * pids are all taken). It waits, retrying; what ended calls left running should go meanwhile.
   */
  onStarved?: () => void;
}

export interface WorkerPoolOptions extends Partial<WorkerPoolHooks> {
  workerUrl: URL;
  init: WorkerInit;
  maxWorkers: number;
  heapMb?: number;
  /** How long a worker may stay silent after a timed-out call before it is judged blocked and replaced. */
  blockedAfterMs?: number;
  /** How long a stopped call may take to settle after its signal aborts before its worker is replaced anyway. */
  settleGraceMs?: number;
  /** Makes a worker thread (tests inject failures); `new Worker` by default. */
  newWorker?: (url: URL, options: WorkerOptions) => Worker;
}

/** How often a call that found no worker tries again to start one: from the first delay, doubling, up to the last. */
const START_RETRY_MS = { first: 5, max: 200 };

/** What the server sees of a worker: somewhere to send read answers and connectors' `run` answers. */
export interface ReadPeer {
  postRead(message: ReadToWorker, transfer?: ArrayBuffer[]): void;
  postRun(message: RunToWorker, transfer?: ArrayBuffer[]): void;
}

interface Pending {
  resolve: (outcome: CallOutcome) => void;
}

/** One worker thread and the calls it is running. */
class PoolWorker implements ReadPeer {
  readonly pending = new Map<string, Pending>();
  /** Calls already answered (timed out, cancelled) whose function has not returned yet. */
  readonly stopping = new Set<string>();
  readonly ready: Promise<PackageNames>;
  /** Resolves when the worker has booted, blank (before any package is loaded). */
  readonly booted: Promise<void>;
  private markBooted: () => void = () => undefined;
  exited = false;
  /** Its package has loaded: calls go to it at once, without waiting on `ready`. */
  loaded = false;
  /** Set while a timed-out call's worker is checked, and for good once it is judged blocked: no new calls go to it. */
  suspect = false;
  retired = false;
  private pongs = new Map<number, () => void>();
  private pingSeq = 0;

  constructor(
    readonly worker: Worker,
    /** The pool's hooks, read at each event: the first worker starts before the server sets them. */
    private readonly hooks: Partial<WorkerPoolHooks>,
    private readonly onExit: (w: PoolWorker) => void,
  ) {
    this.booted = new Promise<void>((resolve) => (this.markBooted = resolve));
    this.ready = new Promise<PackageNames>((resolve, reject) => {
      let loaded = false;
      worker.on('message', (posted: unknown) => {
        // Function code shares the worker and can post anything: check the shape, then that the
        // message concerns a call this worker runs. Ids of other workers' calls are never taken.
        const m = checkFromWorker(posted);
        if (!m) return this.onInvalid?.(this);
        switch (m.t) {
          case 'booted':
            this.markBooted();
            break;
          case 'ready':
            if (loaded) return;
            loaded = true;
            this.loaded = true;
            resolve({ functions: m.functions, connectors: m.connectors });
            break;
          case 'load-error':
            if (loaded) return;
            reject(new DsError('FUNCTION_ERROR', `The function package failed to load: ${m.message}`, m.stack ? { remoteStack: m.stack } : {}));
            break;
          case 'result':
            if (!this.runs(m.id)) return;
            this.stopping.delete(m.id);
            this.settle(m.id, 'text' in m ? { ok: true, kind: m.kind, text: m.text } : { ok: true, kind: m.kind, frame: m.frame });
            break;
          case 'error':
            if (!this.runs(m.id)) return;
            this.stopping.delete(m.id);
            this.settle(m.id, { ok: false, code: m.code, message: m.message, ...(m.stack ? { stack: m.stack } : {}), claimed: true });
            break;
          case 'log':
            // Never under another worker's call. (Late output of this worker's ended calls goes too:
            // the server would drop it anyway, having no call to give it to.)
            if (m.id !== null && !this.runs(m.id)) return;
            this.hooks.onLog?.(m.id, m.stream, m.data);
            break;
          case 'pong':
            this.pongs.get(m.n)?.();
            this.pongs.delete(m.n);
            break;
          case 'progress':
            // Only of a call running here; one answered already (stopped, timed out) reports nothing more.
            if (this.pending.has(m.id)) this.hooks.onProgress?.(m.id, m.fraction, m.message);
            break;
          case 'read.open':
            // Only a call running here may read; a late open of a call that ended gets its answer.
            if (!this.pending.has(m.id))
              return this.postRead({ t: 'read.error', wrid: m.wrid, code: 'CANCELLED', message: 'The call that asked for this read is not running.' });
            this.hooks.onRead?.(this, m);
            break;
          case 'read.ack':
          case 'read.cancel':
            this.hooks.onRead?.(this, m);
            break;
          case 'run':
            // Only a call running here may ask; whether it is a connector's is the server's question.
            if (!this.pending.has(m.id) || !this.hooks.onRun)
              return this.postRun({ t: 'run.result', nid: m.nid, ok: false, code: 'CANCELLED', message: 'The call that asked for this run is not running.' });
            this.hooks.onRun(this, m);
            break;
        }
      });
      let crash: Error | undefined;
      worker.on('error', (error) => {
        crash = error;
        reject(new DsError('FUNCTION_ERROR', `The function package failed to load: ${error.message}`, { cause: error }));
      });
      worker.on('exit', (exitCode) => {
        this.exited = true;
        reject(new DsError('FUNCTION_ERROR', `The function worker exited (code ${exitCode}) before it was ready.`));
        const oom = (crash as NodeJS.ErrnoException | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY';
        const outcome: CallOutcome = oom
          ? {
              ok: false,
              code: 'OUT_OF_MEMORY',
              message: 'The function ran out of memory (its worker hit the heap limit). Process less at once or raise limits.memoryMb.',
            }
          : {
              ok: false,
              code: 'FUNCTION_ERROR',
              message: crash
                ? `The function crashed its worker: ${crash.message}`
                : `The function's worker exited (code ${exitCode}) during the call; a fresh worker serves the next call.`,
              ...(crash?.stack ? { stack: crash.stack } : {}),
            };
        for (const id of [...this.pending.keys()]) this.settle(id, outcome);
        this.onExit(this);
      });
    });
    // A load failure is reported through start(); avoid an unhandled rejection for later workers.
    this.ready.catch(() => undefined);
  }

  /** Calls given to this worker that wait for it to load. */
  waiting = 0;

  /** Calls it runs or is about to run. */
  get load(): number {
    return this.pending.size + this.waiting;
  }

  /** Set by the pool: a worker that posts a malformed message is retired. */
  onInvalid: ((w: PoolWorker) => void) | undefined;

  /** The call is this worker's and still unanswered, or answered (stopped) but still running. */
  runs(id: string): boolean {
    return this.pending.has(id) || this.stopping.has(id);
  }

  send(message: ToWorker, transfer?: ArrayBuffer[]): void {
    if (!this.exited) this.worker.postMessage(message, transfer);
  }

  postRead(message: ReadToWorker, transfer?: ArrayBuffer[]): void {
    if (!this.exited) this.worker.postMessage(message, transfer);
  }

  postRun(message: RunToWorker, transfer?: ArrayBuffer[]): void {
    if (!this.exited) this.worker.postMessage(message, transfer);
  }

  /** Set on a retired worker that may finish its other calls first; runs once none is left. */
  onDrained: (() => void) | undefined;

  settle(id: string, outcome: CallOutcome): void {
    this.stopping.delete(id);
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.resolve(outcome);
    if (this.pending.size === 0) this.onDrained?.();
  }

  /** Resolves true when the worker answers a ping within `ms`: its event loop is not blocked. */
  responsive(ms: number): Promise<boolean> {
    const n = ++this.pingSeq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pongs.delete(n);
        resolve(false);
      }, ms);
      this.pongs.set(n, () => {
        clearTimeout(timer);
        resolve(true);
      });
      this.send({ t: 'ping', n });
    });
  }
}

/**
 * Runs calls in worker threads. A call goes to an idle worker, else to a new one (up to
 * `maxWorkers`), else to the least loaded: CPU-bound calls spread over cores, while I/O-bound calls
 * share a worker. A worker that a timed-out call keeps blocked is terminated and replaced.
 */
export class WorkerPool {
  private workers: PoolWorker[] = [];
  private callWorker = new Map<string, PoolWorker>();
  /** Calls waiting for a worker; an outcome is set when one is stopped before it started. */
  private starting = new Map<string, CallOutcome | undefined>();
  private names: PackageNames = { functions: [], connectors: [] };
  private closed = false;
  private started: Promise<PackageNames> | undefined;
  private readonly hooks: Partial<WorkerPoolHooks>;

  constructor(private readonly options: WorkerPoolOptions) {
    this.hooks = { ...options };
  }

  /** Connects the pool to the server. Events before this (a first worker's load) go unheard. */
  setHooks(hooks: WorkerPoolHooks): void {
    Object.assign(this.hooks, hooks);
  }

  /**
   * Boots the first worker (once, blank); resolves with the package's function and connector names,
   * or rejects with the load error, once load() was called. Called as early as possible: the worker
   * boots (thread, dev-utils) while the server code loads and the host delivers the package.
   */
  start(): Promise<PackageNames> {
    this.started ??= this.loading.then(() => this.firstReady());
    return this.started;
  }

  /**
   * Boots the first worker, blank (once). The server calls it as soon as it listens: booting a
   * worker beside the main thread's own start would slow the listen (a session has one core), and
   * the worker then boots while the host connects and sends the package.
   */
  boot(): void {
    // A worker that load() already spawned (a package from the folder) is the first one: never a second.
    if (!this.closed) this.booted ??= this.workers.find((w) => !w.exited) ?? this.spawn();
  }

  /** Resolves once the first worker has booted, blank (a host that keeps runtimes ready waits for it). */
  whenBooted(): Promise<void> {
    this.boot();
    return this.booted ? this.booted.booted : Promise.resolve();
  }

  /**
   * The package is in place: every worker imports it, and every later one (growth, a replaced
   * crashed worker) does so as soon as it boots. start()'s promise then settles with the load.
   */
  load(): Promise<PackageNames> {
    if (!this.loadAsked) {
      this.loadAsked = true;
      for (const w of this.workers) w.send({ t: 'load' });
      this.markLoading();
    }
    return this.start();
  }

  /** The first live worker's load (a replacement's, if the first died while it booted). */
  private firstReady(): Promise<PackageNames> {
    const first = this.workers.find((w) => !w.exited) ?? this.spawn();
    return first.ready.then((names) => (this.names = names));
  }

  /** Started blank: the first worker boots at once, and imports the package only after load(). */
  private booted: PoolWorker | undefined;
  private loadAsked = false;
  private markLoading: () => void = () => undefined;
  private readonly loading = new Promise<void>((resolve) => (this.markLoading = resolve));

  get functionNames(): string[] {
    return this.names.functions;
  }

  get connectorNames(): string[] {
    return this.names.connectors;
  }

  /** Runs function `fn` (or, with `connector`, connector `fn`) as call `id`. */
  async call(id: string, fn: string, input: CallInput, logBytes: number, connector = false): Promise<CallOutcome> {
    // Chosen at once and counted while its worker loads, so calls that arrive together spread
    // over workers instead of all taking the one that looked idle.
    let worker = this.pick();
    // A loaded worker takes the call in this tick (the warm path); else it waits for one, or for the load.
    if (!worker?.loaded) {
      // A call stopped (cancel, timeout) while it waits for a worker must never start.
      this.starting.set(id, undefined);
      let stopped: CallOutcome | undefined;
      try {
        worker ??= await this.waitForWorker(id);
        if (worker) {
          worker.waiting++;
          try {
            await worker.ready;
          } finally {
            worker.waiting--;
          }
        }
      } finally {
        stopped = this.starting.get(id);
        this.starting.delete(id);
      }
      if (stopped) return stopped;
      if (!worker) return { ok: false, code: 'CANCELLED', message: 'The runtime is shutting down.' };
    }
    // The arguments' buffer (JSON text, a string's UTF-8 or raw bytes) moves to the worker: transferred, never cloned.
    const payload = input.json instanceof Uint8Array ? input.json : input.text instanceof Uint8Array ? input.text : input.bytes;
    const message: CallToWorker =
      input.bytes !== undefined
        ? { t: 'call', id, fn, logBytes, bytes: input.bytes }
        : input.json !== undefined
          ? { t: 'call', id, fn, logBytes, json: input.json }
          : input.text !== undefined
            ? { t: 'call', id, fn, logBytes, text: input.text }
            : { t: 'call', id, fn, logBytes, args: input.args };
    if (connector) message.connector = true;
    return new Promise<CallOutcome>((resolve) => {
      worker.pending.set(id, { resolve });
      this.callWorker.set(id, worker);
      worker.send(message, payload ? [payload.buffer as ArrayBuffer] : undefined);
    }).finally(() => this.callWorker.delete(id));
  }

  /**
   * Why call `id` has no worker yet, when it waits because none could start (the error of the
   * last try, e.g. EAGAIN); undefined for a call that runs, or waits for a worker's load.
   */
  starvedBy(id: string): string | undefined {
    return this.starved.has(id) ? (this.startFailure ?? 'no worker could start') : undefined;
  }

  /** Calls waiting because no worker could start for them. */
  private starved = new Set<string>();
  /** The error of the last worker that failed to start. */
  private startFailure: string | undefined;

  /**
   * No worker could be had for call `id`: every one is out of service (stopping a timed-out call,
   * retired) and a new thread could not start, as when a fork bomb the stopped call left holds
   * every pid. Tries again, backing off, until a worker can be had or the call is stopped (its
   * deadline or a cancel, through abort()); meanwhile the server reaps what ended calls left.
   */
  private async waitForWorker(id: string): Promise<PoolWorker | undefined> {
    this.starved.add(id);
    try {
      for (let delay = START_RETRY_MS.first; ; delay = Math.min(delay * 2, START_RETRY_MS.max)) {
        this.hooks.onStarved?.();
        await new Promise((resolve) => setTimeout(resolve, delay));
        if (this.closed || this.starting.get(id)) return undefined;
        const worker = this.pick();
        if (worker) return worker;
      }
    } finally {
      this.starved.delete(id);
    }
  }

  /**
   * Answers a call with `outcome` and aborts its signal. A function must then stop: if its worker
   * does not answer a ping (a synchronous loop), or the function has not returned within the grace
   * (it ignores its signal), the worker is retired and replaced.
   */
  abort(id: string, reason: 'timeout' | 'cancel', outcome: CallOutcome): void {
    const worker = this.callWorker.get(id);
    if (!worker) {
      if (this.starting.has(id)) this.starting.set(id, outcome);
      return;
    }
    worker.send({ t: 'abort', id, reason });
    worker.settle(id, outcome);
    worker.stopping.add(id);
    worker.suspect = true;
    void worker.responsive(this.options.blockedAfterMs ?? 250).then((alive) => {
      worker.suspect = false;
      if (!alive) return this.retire(worker, `call ${id} blocked its worker past the deadline`, false);
      setTimeout(() => {
        if (worker.stopping.has(id)) this.retire(worker, `call ${id} ignored its abort signal`, true);
      }, this.options.settleGraceMs ?? 1_000).unref();
    });
  }

  /**
   * Takes a worker out of service and terminates it. A blocked worker goes at once, and calls it
   * was running end with CANCELLED. A responsive one (`drain`) first finishes its other calls:
   * each still ends by its own deadline, so the wait is bounded.
   */
  private retire(worker: PoolWorker, why: string, drain: boolean, code: ErrorCode = 'CANCELLED'): void {
    if (worker.exited || worker.retired) return;
    worker.retired = true;
    // A worker that finishes its other calls first leaves a warm one beside it. One retired at
    // once is replaced on its exit, after the strays it left are reaped: a fork bomb may hold
    // every pid, and a new worker needs a thread.
    if (drain && worker.pending.size > 0 && !this.closed && this.usable().length === 0) this.trySpawn();
    const terminate = () => {
      worker.onDrained = undefined;
      const message = `Stopped because ${why}; a fresh worker serves the next call.`;
      for (const other of [...worker.pending.keys()]) worker.settle(other, { ok: false, code, message });
      void worker.worker.terminate();
    };
    if (drain && worker.pending.size > 0) worker.onDrained = terminate;
    else terminate();
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
    this.workers = [];
  }

  /** A worker for a new call: idle, else new, else the least loaded; none when none is usable and none can start. */
  private pick(): PoolWorker | undefined {
    const live = this.usable();
    const idle = live.find((w) => w.load === 0);
    if (idle) return idle;
    // A new worker needs a thread, which a full pids limit refuses: then a busy worker serves.
    const fresh = live.length < this.options.maxWorkers ? this.trySpawn() : undefined;
    if (fresh) return fresh;
    return live.length > 0 ? live.reduce((a, b) => (b.load < a.load ? b : a)) : undefined;
  }

  /**
   * A new worker, or none when its thread cannot start: `new Worker` throws ERR_WORKER_INIT_FAILED
   * (EAGAIN) while the container's pids limit is reached, say by a fork bomb not yet reaped.
   */
  private trySpawn(): PoolWorker | undefined {
    try {
      const worker = this.spawn();
      this.startFailure = undefined;
      return worker;
    } catch (error) {
      this.startFailure = (error as Error).message;
      return undefined;
    }
  }

  private usable(): PoolWorker[] {
    // A worker still running a stopped call may be retired any moment: give it nothing new.
    return this.workers.filter((w) => !w.exited && !w.retired && !w.suspect && w.stopping.size === 0);
  }

  private spawn(): PoolWorker {
    const { heapMb, newWorker = (url, options) => new Worker(url, options) } = this.options;
    const worker = newWorker(this.options.workerUrl, {
      workerData: this.options.init,
      stdout: true,
      stderr: true,
      ...(heapMb ? { resourceLimits: { maxOldGenerationSizeMb: heapMb } } : {}),
    });
    const pw = new PoolWorker(worker, this.hooks, (gone) => {
      this.workers = this.workers.filter((w) => w !== gone);
      this.hooks.onWorkerExit?.(gone);
      // Processes a retired worker's function started must not outlive it (nor take the pids a new worker needs).
      if (gone.retired) this.hooks.onRetire?.();
      // Keep one warm worker so the call after a crash does not pay for a cold module load
      // (if it cannot start now, the next call tries again).
      if (!this.closed && this.usable().length === 0) this.trySpawn();
    });
    // Only function code posts malformed messages: the worker is no longer trusted with calls.
    pw.onInvalid = (bad) => this.retire(bad, 'a function in its worker posted a malformed message to the runtime', false, 'FUNCTION_ERROR');
    this.workers.push(pw);
    if (this.loadAsked) pw.send({ t: 'load' });
    return pw;
  }
}

/** The pool a runtime with this config uses; `main` creates it first, so the first worker boots early. */
export function createPool(config: RuntimeConfig, workerUrl: URL): WorkerPool {
  return new WorkerPool({
    workerUrl,
    init: { functionsDir: config.functionsDir, resultBytes: config.resultBytes },
    maxWorkers: config.maxWorkers,
    ...(config.workerHeapMb ? { heapMb: config.workerHeapMb } : {}),
  });
}
