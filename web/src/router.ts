// Hash routing: the daemon serves only /index.html and /assets/*, so every
// page lives after the `#`.
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'dashboard' }
  | { page: 'install' }
  | { page: 'app'; name: string }
  | { page: 'sra' }
  | { page: 'resources' }
  | { page: 'events' }
  | { page: 'health' }
  | { page: 'missing'; path: string };

export function parse(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/';
  const app = /^\/apps\/([^/]+)$/.exec(path);
  if (app) return { page: 'app', name: decodeURIComponent(app[1]) };
  switch (path) {
    case '/':
      return { page: 'dashboard' };
    case '/install':
      return { page: 'install' };
    case '/sra':
      return { page: 'sra' };
    case '/resources':
      return { page: 'resources' };
    case '/events':
      return { page: 'events' };
    case '/health':
      return { page: 'health' };
    default:
      return { page: 'missing', path };
  }
}

export const href = {
  dashboard: '#/',
  install: '#/install',
  app: (name: string) => `#/apps/${encodeURIComponent(name)}`,
  sra: '#/sra',
  resources: '#/resources',
  events: '#/events',
  health: '#/health',
};

export function navigate(to: string) {
  location.hash = to;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.hash));
  useEffect(() => {
    const changed = () => setRoute(parse(location.hash));
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}
