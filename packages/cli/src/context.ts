import type { Progress } from './progress.js';

/** What every command gets from the top level: output channels and the global flags. */
export interface CommandContext {
  /** `--json`: print one JSON document on stdout instead of text. */
  json: boolean;
  progress: Progress;
  /** stdout: results only. */
  out(text: string): void;
  /** stderr: logs and notes; errors go through the top-level handler instead. */
  err(text: string): void;
}
