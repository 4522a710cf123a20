/**
 * Progress of long steps (image build, container start, packaging) on stderr. On a TTY a spinner
 * line is redrawn in place; `--progress` asks for plain lines where there is no TTY (scripts,
 * tests); otherwise nothing is printed, so piped output stays clean.
 */
export interface Progress {
  /** Starts a step, or updates the text of the current one. */
  step(text: string): void;
  /** Ends the current step with a final line. */
  done(text: string): void;
  /** Clears any spinner; safe to call more than once. */
  stop(): void;
}

export type ProgressMode = 'tty' | 'plain' | 'off';

export interface ProgressFlags {
  progress?: boolean;
  quiet?: boolean;
}

export function progressMode(flags: ProgressFlags, stream: { isTTY?: boolean } = process.stderr): ProgressMode {
  if (flags.quiet) return 'off';
  if (stream.isTTY) return 'tty';
  return flags.progress ? 'plain' : 'off';
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export function createProgress(mode: ProgressMode, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (mode === 'off') return { step() {}, done() {}, stop() {} };
  if (mode === 'plain') {
    return {
      step: (text) => void stream.write(`ds: ${text}\n`),
      done: (text) => void stream.write(`ds: ${text}\n`),
      stop() {},
    };
  }
  let text = '';
  let frame = 0;
  let timer: NodeJS.Timeout | undefined;
  const width = () => Math.max(20, (stream.columns || 80) - 3);
  const draw = () => void stream.write(`\r\x1b[2K${FRAMES[frame++ % FRAMES.length]} ${text.slice(0, width())}`);
  const clear = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
    stream.write('\r\x1b[2K');
  };
  return {
    step(next) {
      text = next.replace(/\s+/g, ' ').trim();
      if (!timer) {
        timer = setInterval(draw, 80);
        timer.unref();
      }
      draw();
    },
    done(line) {
      clear();
      stream.write(`✓ ${line}\n`);
    },
    stop() {
      if (timer) clear();
    },
  };
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** 1536 → `1.5 KiB`; whole bytes below 1 KiB. */
export function bytesText(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/**
 * A bar for a step's text: `[########------------]  40%  20.0 MiB of 50.0 MiB`, `width` cells
 * wide. Plain ASCII, so that a log or a terminal without Unicode shows it as it is.
 */
export function progressBar(done: number, total: number, width = 20): string {
  const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
  const filled = Math.round(fraction * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%  ${bytesText(done)} of ${bytesText(total)}`;
}
