import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

/**
 * The owners' console: a single-page app that the gatekeeper serves at /console/ under a strict CSP
 * (`script-src 'self'; style-src 'self'`), so the build must emit no inline script or style:
 * no module-preload polyfill, no inlined assets, one CSS file.
 */
export default defineConfig({
  base: '/console/',
  plugins: [react()],
  resolve: {
    // Workspace packages resolve to their TypeScript sources (`@datastation/protocol/station`).
    conditions: ['source', 'browser', 'module', 'import', 'default'],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    sourcemap: false,
  },
  server: {
    // `vite` (pnpm dev) against a running gatekeeper: the API and its event stream are proxied.
    proxy: {
      '/v1': { target: process.env.DS_GATEKEEPER_URL ?? 'http://127.0.0.1:8080' },
    },
  },
});
