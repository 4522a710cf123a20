import { Interrupted, SIGNAL_EXIT, type StopSignal } from './exit.js';

/**
 * SIGINT/SIGTERM during a command that owns resources (a container, temp folders). The first
 * signal runs the registered stop actions (closing the connection removes the container) and makes
 * the command unwind through its `finally` blocks, ending in `Interrupted` (exit 130/143). A second
 * signal exits at once.
 */
export class StopSignals implements Disposable {
  signal: StopSignal | undefined;
  private readonly actions: (() => Promise<void>)[] = [];
  private readonly onInt = () => this.handle('SIGINT');
  private readonly onTerm = () => this.handle('SIGTERM');

  constructor() {
    process.on('SIGINT', this.onInt);
    process.on('SIGTERM', this.onTerm);
  }

  /** Runs `action` on the first signal; at once if one has already come. */
  onStop(action: () => Promise<void>): void {
    if (this.signal) void action().catch(() => undefined);
    else this.actions.push(action);
  }

  throwIfStopped(): void {
    if (this.signal) throw new Interrupted(this.signal);
  }

  [Symbol.dispose](): void {
    process.off('SIGINT', this.onInt);
    process.off('SIGTERM', this.onTerm);
  }

  private handle(signal: StopSignal): void {
    if (this.signal) process.exit(SIGNAL_EXIT[signal]);
    this.signal = signal;
    for (const action of this.actions.splice(0)) void action().catch(() => undefined);
  }
}
