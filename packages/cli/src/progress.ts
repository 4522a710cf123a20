import { printable } from '@datastation/protocol';

/**
 * Progress of long steps (image build, container start, packaging) on stderr. On a TTY a spinner
 * line is redrawn in place; `--progress` asks for plain lines where there is no TTY (scripts,
 * tests); otherwise nothing is printed, so piped output stays clean.
 */
export interface Progress {
  /** Starts a step, or updates the text of the current one. */
  step(text: string): void;
  /**
   * A bar for work whose share done is known (`fraction`, 0..1), with a short text: redrawn in
   * place on a terminal; as a plain line only when the whole percent or the text changed. The text
   * is shown as printable one-line text whatever it holds (it may come from a station's function).
   */
  bar(fraction: number, text: string): void;
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
  if (mode === 'off') return { step() {}, bar() {}, done() {}, stop() {} };
  if (mode === 'plain') {
    let lastBar = '';
    return {
      step: (text) => void stream.write(`ds: ${text}\n`),
      bar(fraction, text) {
        const line = `${percent(fraction)} ${oneLine(text)}`.trimEnd();
        if (line === lastBar) return;
        lastBar = line;
        stream.write(`ds: ${line}\n`);
      },
      done: (text) => void stream.write(`ds: ${text}\n`),
      stop() {},
    };
  }
  let text = '';
  let frame = 0;
  let timer: NodeJS.Timeout | undefined;
  let barShown = false;
  const width = () => Math.max(20, (stream.columns || 80) - 3);
  const draw = () => void stream.write(`\r\x1b[2K${FRAMES[frame++ % FRAMES.length]} ${text.slice(0, width())}`);
  const clear = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
    barShown = false;
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
    bar(fraction, next) {
      // A bar is redrawn when it changes, not animated: the spinner stops.
      if (timer) clearInterval(timer);
      timer = undefined;
      const cells = 20;
      const filled = Math.round(clamp(fraction) * cells);
      const line = `[${'#'.repeat(filled)}${'-'.repeat(cells - filled)}] ${percent(fraction)} ${oneLine(next)}`.trimEnd();
      stream.write(`\r\x1b[2K${line.slice(0, width())}`);
      barShown = true;
    },
    done(line) {
      clear();
      stream.write(`✓ ${line}\n`);
    },
    stop() {
      if (timer || barShown) clear();
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

function clamp(fraction: number): number {
  return Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
}

function percent(fraction: number): string {
  return `${Math.floor(clamp(fraction) * 100)}%`.padStart(4);
}

/** Text for one line of a terminal: control characters (escapes, carriage returns, newlines) and bidi overrides shown escaped. */
function oneLine(text: string): string {
  return printable(text).replace(/[\n\t]/g, ' ');
}
