/** True when dist/index.html exists and is newer than every input (always true where src/ is not shipped). */
export declare function consoleIsBuilt(): Promise<boolean>;
/**
 * Builds the console with Vite when dist/ is missing or older than its sources (`force`: always).
 * In a checkout only: an installed package ships dist/ and has neither sources nor Vite.
 */
export declare function buildConsole(options?: { force?: boolean }): Promise<{ built: boolean; dir: string }>;
