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
