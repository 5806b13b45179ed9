// The shell: signed in or not, the navigation, the degraded banner, and the
// page the hash names.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, onUnauthorized, session as sessionApi } from './api';
import { adopt, Login } from './auth';
import { DegradedBanner } from './components/Banner';
import { DaemonStatusProvider, useDaemonStatusPoll } from './daemon-status';
import { errorText } from './format';
import { AppPage } from './pages/AppPage';
import { Dashboard } from './pages/Dashboard';
import { Events } from './pages/Events';
import { Health } from './pages/Health';
import { Install } from './pages/Install';
import { Resources } from './pages/Resources';
import { Sra } from './pages/Sra';
import { href, useRoute, type Route } from './router';
import type { Session } from './types';

type SessionState =
  | { status: 'checking' }
  | { status: 'signed-out'; reason?: string }
  | { status: 'unreachable'; message: string }
  | { status: 'signed-in'; session: Session };

export function App() {
  const [state, setState] = useState<SessionState>({ status: 'checking' });

  const check = () => {
    sessionApi.get().then(
      (s) => setState({ status: 'signed-in', session: adopt(s) }),
      (e) =>
        setState(
          e instanceof ApiError && e.status === 401
            ? { status: 'signed-out' }
            : { status: 'unreachable', message: errorText(e) },
        ),
    );
  };

  useEffect(() => {
    onUnauthorized(() =>
      setState((s) => (s.status === 'signed-in' ? { status: 'signed-out', reason: 'Your session ended. Sign in again.' } : s)),
    );
    check();
  }, []);

  switch (state.status) {
    case 'checking':
      return <p class="splash" role="status">Loading berth…</p>;
    case 'signed-out':
      return <Login reason={state.reason} onSignedIn={(session) => setState({ status: 'signed-in', session })} />;
    case 'unreachable':
      return (
        <main class="login">
          <div class="card login-card" role="alert">
            <h1>berth is not answering</h1>
            <p>{state.message}</p>
            <button class="primary" onClick={check}>
              Try again
            </button>
          </div>
        </main>
      );
    case 'signed-in':
      return <Shell session={state.session} onSignedOut={() => setState({ status: 'signed-out' })} />;
  }
}

const sections: { label: string; to: string; matches: Route['page'][] }[] = [
  { label: 'Apps', to: href.dashboard, matches: ['dashboard', 'install', 'app'] },
  { label: 'SRA images', to: href.sra, matches: ['sra'] },
  { label: 'Resources', to: href.resources, matches: ['resources'] },
  { label: 'Events', to: href.events, matches: ['events'] },
  { label: 'Health', to: href.health, matches: ['health'] },
];

function Shell({ session, onSignedOut }: { session: Session; onSignedOut: () => void }) {
  const route = useRoute();
  const status = useDaemonStatusPoll();
  const [menuOpen, setMenuOpen] = useState(false);

  // A new page: close the narrow-screen menu and move focus to its heading,
  // so keyboard and screen-reader users start at the top of what changed.
  useEffect(() => {
    setMenuOpen(false);
    document.querySelector<HTMLElement>('main h1')?.focus();
  }, [route.page, route.page === 'app' ? route.name : '']);

  const signOut = async () => {
    try {
      await sessionApi.logout();
    } finally {
      onSignedOut();
    }
  };

  return (
    <DaemonStatusProvider value={status}>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href={href.dashboard}>
          <span class="brand-mark" aria-hidden="true">⚓</span> berth
        </a>
        <button
          class="menu-toggle"
          aria-expanded={menuOpen}
          aria-controls="nav"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          Menu
        </button>
        <nav id="nav" class={menuOpen ? 'nav open' : 'nav'} aria-label="Main">
          <ul>
            {sections.map((s) => (
              <li key={s.to}>
                <a href={s.to} aria-current={s.matches.includes(route.page) ? 'page' : undefined}>
                  {s.label}
                </a>
              </li>
            ))}
          </ul>
          <div class="who">
            <span class="muted" data-testid="signed-in-user">
              {session.user}
              {session.method === 'certificate' && ' (certificate)'}
            </span>
            {session.method === 'password' && (
              <button class="link-button" onClick={signOut}>
                Sign out
              </button>
            )}
          </div>
        </nav>
      </header>
      <DegradedBanner />
      <main id="main" tabIndex={-1}>
        <Page route={route} />
      </main>
    </DaemonStatusProvider>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case 'dashboard':
      return <Dashboard />;
    case 'install':
      return <Install />;
    case 'app':
      return <AppPage key={route.name} name={route.name} />;
    case 'sra':
      return <Sra />;
    case 'resources':
      return <Resources />;
    case 'events':
      return <Events />;
    case 'health':
      return <Health />;
    case 'missing':
      return (
        <section>
          <h1 tabIndex={-1}>No such page</h1>
          <p>
            Nothing is at <code>{route.path}</code>. <a href={href.dashboard}>Go to the apps</a>.
          </p>
        </section>
      );
  }
}
