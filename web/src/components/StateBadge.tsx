import type { AppState, Health } from '../types';

const tone: Record<AppState, string> = {
  running: 'good',
  starting: 'busy',
  installing: 'busy',
  upgrading: 'busy',
  uninstalling: 'busy',
  restarting: 'warn',
  stopped: 'idle',
  failed: 'bad',
};

export function StateBadge({ state }: { state: AppState }) {
  return (
    <span class={`badge badge-${tone[state]}`} data-testid="app-state">
      {state}
    </span>
  );
}

export function HealthText({ health }: { health: Health }) {
  if (health === 'none') return <span class="muted">no check</span>;
  return <span class={`health health-${health}`}>{health}</span>;
}
