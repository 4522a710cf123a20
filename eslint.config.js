/**
 * Type-aware lint rules that Biome (`pnpm lint`) has no full equivalent of, and nothing else:
 * `pnpm lint:types` runs typescript-eslint's promise rules over the TypeScript sources and tests.
 *
 * - no-floating-promises: a promise neither awaited, returned, caught nor marked `void` (an
 *   intentional fire-and-forget keeps `void`, with a comment saying why where it is not obvious;
 *   in a test, an `expect(...).rejects` never awaited asserts nothing);
 * - no-misused-promises: a promise where a condition, or a callback whose result is ignored,
 *   expects something else (an async listener whose rejection nobody would see).
 *
 * Types come from two programs: tsconfig.lint.json (every Node package, one program) and the
 * console's own tsconfig (bundler resolution, JSX).
 */
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

const rules = {
  '@typescript-eslint/no-floating-promises': 'error',
  '@typescript-eslint/no-misused-promises': 'error',
};
const common = { plugins: { '@typescript-eslint': tseslint.plugin }, linterOptions: { reportUnusedDisableDirectives: 'error' } };

export default defineConfig(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/coverage/**', 'test-results/**', 'bench/results/**'] },
  {
    files: ['packages/*/{src,test,scripts}/**/*.ts', 'test/**/*.ts', 'bench/*.ts', 'bench/lib/**/*.ts', 'examples/*/{src,test}/**/*.ts', 'examples/*/*.ts'],
    ignores: ['packages/console/**'],
    ...common,
    languageOptions: { parser: tseslint.parser, parserOptions: { project: './tsconfig.lint.json', tsconfigRootDir: import.meta.dirname } },
    rules,
  },
  {
    files: ['packages/console/{src,test}/**/*.{ts,tsx}'],
    ...common,
    languageOptions: { parser: tseslint.parser, parserOptions: { project: './packages/console/tsconfig.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      ...rules,
      // React ignores what an event handler returns; the console's async handlers end in their own
      // try/catch (an error shown on the page), so JSX attributes are not checked.
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { attributes: false } }],
    },
  },
);
