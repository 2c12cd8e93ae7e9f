import { defineConfig } from 'vite';

// The app is served by `wangge serve` at `/`; `npm run dev` proxies the API to a local
// server (WANGGE_URL, default http://127.0.0.1:8080) so pages reload while you edit.
const api = process.env.WANGGE_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/',
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 1500, sourcemap: false },
  server: {
    proxy: Object.fromEntries(['/v1', '/tiles', '/ogc', '/open311'].map((p) => [p, api])),
  },
});
