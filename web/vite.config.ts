import { defineConfig, type ProxyOptions } from 'vite';
import { devAuth } from './dev/dev-auth';

// `npm run dev` / `npm run preview` talk to a daemon over its unix socket:
// BERTH_SOCKET names it (the CLI's variable), as the daemon would be reached
// from a browser on the same origin.
const socketPath = process.env.BERTH_SOCKET ?? '/run/berth/berth.sock';
const apiPrefixes = ['/v1', '/api', '/metrics'];
const proxy: Record<string, ProxyOptions> = Object.fromEntries(
  apiPrefixes.map((prefix) => [prefix, // host and port only fill the Host header; the socket is what is dialled.
    { target: { socketPath, host: 'localhost', port: 80 }, changeOrigin: false },]),
);

export default defineConfig({
  plugins: [
    devAuth({
      user: process.env.BERTH_UI_DEV_USER ?? 'admin',
      password: process.env.BERTH_UI_DEV_PASSWORD ?? 'admin',
      apiPrefixes,
    }),
  ],
  server: { proxy },
  preview: { proxy },
  build: {
    // The daemon serves /index.html and /assets/*; nothing else.
    assetsDir: 'assets',
    target: 'es2022',
    // One small bundle loads faster than a few smaller ones on a first visit.
    modulePreload: { polyfill: false },
  },
});
