/** Kept in step with package.json by the release process (all @datastation/* share one version). */
export const RUNTIME_VERSION = '0.1.0';
