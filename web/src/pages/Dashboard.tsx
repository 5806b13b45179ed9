import { useEffect, useState } from 'preact/hooks';
import { apps as appsApi } from '../api';
import { Notice } from '../components/Notice';
import { HealthText, StateBadge } from '../components/StateBadge';
import { bytes, cpus, duration } from '../format';
import { usePoll } from '../hooks';
import { href } from '../router';
import type { AppView } from '../types';

const POLL_MS = 3000;

export function Dashboard() {
  const { data: apps, error } = usePoll(appsApi.list, POLL_MS);
  const [flash] = useState(takeFlash);

  useEffect(() => {
    document.title = 'Apps · berth';
  }, []);

  // The first-load benchmark measures until this mark: the table is there
  // and its links work.
  useEffect(() => {
    if (apps) performance.mark('berth:dashboard-ready');
  }, [apps !== undefined]);

  return (
    <section aria-labelledby="apps-title" data-testid="dashboard" data-ready={apps ? 'true' : 'false'}>
      <div class="page-head">
        <h1 id="apps-title" tabIndex={-1}>
          Apps
        </h1>
        <a class="button primary" href={href.install} data-testid="install-link">
          Install an app
        </a>
      </div>
      <Notice notice={flash ? { kind: 'ok', text: flash } : null} testid="dashboard-flash" />
      <Notice notice={error ? { kind: 'error', text: `Cannot list the apps: ${error}` } : null} />
      {apps === undefined && !error && <p role="status">Loading the apps…</p>}
      {apps !== undefined && apps.length > 0 && (
        <p class="apps-summary muted" data-testid="apps-summary">
          {summary(apps)}
        </p>
      )}
      {apps !== undefined && <AppsTable apps={apps} />}
    </section>
  );
}

/** "3 apps: 2 running, 1 failed". */
function summary(apps: AppView[]): string {
  const counts = new Map<string, number>();
  for (const app of apps) counts.set(app.state, (counts.get(app.state) ?? 0) + 1);
  const parts = [...counts].sort((a, b) => b[1] - a[1]).map(([state, n]) => `${n} ${state}`);
  return `${apps.length} app${apps.length === 1 ? '' : 's'}: ${parts.join(', ')}`;
}

function AppsTable({ apps }: { apps: AppView[] }) {
  if (apps.length === 0) {
    return (
      <p class="empty" data-testid="apps-empty">
        No apps are installed yet. <a href={href.install}>Install one</a> from an image archive, a registry or a URL.
      </p>
    );
  }
  return (
    <div class="table-wrap">
      <table class="stack" data-testid="apps-table">
        <caption class="visually-hidden">Installed apps</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">State</th>
            <th scope="col">Health</th>
            <th scope="col">Limits</th>
            <th scope="col">Uptime</th>
            <th scope="col">Version</th>
          </tr>
        </thead>
        <tbody>
          {[...apps]
            .sort((a, b) => a.name.localeCompare(b.name))
            .map((app) => (
              <AppRow key={app.name} app={app} />
            ))}
        </tbody>
      </table>
    </div>
  );
}

function AppRow({ app }: { app: AppView }) {
  return (
    <tr data-testid={`app-row-${app.name}`} class={app.failure ? 'has-problem' : undefined}>
      <th scope="row" data-label="Name">
        <a href={href.app(app.name)}>{app.name}</a>
        {app.failure && (
          <p class="row-problem" data-testid="app-problem">
            {app.failure}
          </p>
        )}
      </th>
      <td data-label="State">
        <StateBadge state={app.state} />
        {app.restarts > 0 && <span class="muted"> · {app.restarts} restarts</span>}
      </td>
      <td data-label="Health">
        <HealthText health={app.health} />
      </td>
      <td data-label="Limits">
        {cpus(app.cpus)} · {app.memory ? bytes(app.memory) : 'no memory limit'}
      </td>
      <td data-label="Uptime">{app.uptime_seconds == null ? '—' : duration(app.uptime_seconds)}</td>
      <td data-label="Version" class="mono" data-testid="app-image">
        {app.image}
      </td>
    </tr>
  );
}

// A one-time message carried to the dashboard across a navigation (e.g.
// "x was uninstalled").
let flashMessage: string | null = null;

export function flashOnDashboard(message: string) {
  flashMessage = message;
}

function takeFlash(): string | null {
  const message = flashMessage;
  flashMessage = null;
  return message;
}
