import { useEffect, useState } from 'preact/hooks';
import { apps } from '../api';
import { Dialog } from '../components/Dialog';
import { EventList, useEventFeed } from '../components/EventList';
import { LogViewer } from '../components/LogViewer';
import { Notice, type NoticeValue } from '../components/Notice';
import { Progress } from '../components/Progress';
import { emptySource, sourceRequest, SourceFields } from '../components/SourceFields';
import { HealthText, StateBadge } from '../components/StateBadge';
import { bytes, cpus, duration, errorText, shortId, when } from '../format';
import { useOperation, usePoll } from '../hooks';
import { href, navigate } from '../router';
import type { AppView } from '../types';
import { flashOnDashboard } from './Dashboard';

const POLL_MS = 3000;
const EVENTS_KEPT = 100;

type Panel = 'none' | 'upgrade' | 'rollback' | 'uninstall';

export function AppPage({ name }: { name: string }) {
  const polled = usePoll(() => apps.show(name), POLL_MS, [name]);
  // What an action answered is newer than the last poll, until the next one.
  const [latest, setLatest] = useState<AppView>();
  const app = latest ?? polled.data;
  const [panel, setPanel] = useState<Panel>('none');
  const [notice, setNotice] = useState<NoticeValue | null>(null);
  const [busy, setBusy] = useState(false);
  const upgrade = useOperation();
  const rollback = useOperation();

  useEffect(() => {
    document.title = `${name} · berth`;
  }, [name]);
  useEffect(() => setLatest(undefined), [polled.data]);

  const missing = polled.error && !polled.data;

  const verb = async (label: string, action: () => Promise<AppView>) => {
    setBusy(true);
    setNotice({ kind: 'info', text: `${label} ${name}…` });
    try {
      setLatest(await action());
      setNotice({ kind: 'ok', text: `${label} ${name}: done.` });
    } catch (e) {
      setNotice({ kind: 'error', text: `${label} ${name} failed: ${errorText(e)}` });
    } finally {
      setBusy(false);
    }
  };

  const finished = (result: AppView | undefined, what: string) => {
    if (!result) return;
    setLatest(result);
    setPanel('none');
    setNotice({ kind: 'ok', text: `${what}: ${name} now runs ${result.image}.` });
  };

  const working = busy || upgrade.running || rollback.running;
  return (
    <section aria-labelledby="app-title" data-testid="app-page">
      <p class="crumbs">
        <a href={href.dashboard}>Apps</a> /
      </p>
      <div class="page-head app-head">
        <h1 id="app-title" tabIndex={-1}>
          {name}
        </h1>
        {app && <StateBadge state={app.state} />}
        {app && <HealthText health={app.health} />}
      </div>
      {missing && <Notice notice={{ kind: 'error', text: polled.error as string }} testid="app-error" />}
      {app?.failure && <Notice notice={{ kind: 'error', text: app.failure }} testid="app-failure" />}

      {app && (
        <div class="toolbar" role="toolbar" aria-label={`Actions on ${name}`}>
          <button disabled={working || app.state === 'running'} onClick={() => verb('Starting', () => apps.start(name))}>
            Start
          </button>
          <button disabled={working || app.state === 'stopped'} onClick={() => verb('Stopping', () => apps.stop(name))}>
            Stop
          </button>
          <button disabled={working} onClick={() => verb('Restarting', () => apps.restart(name))}>
            Restart
          </button>
          <button disabled={working} aria-expanded={panel === 'upgrade'} onClick={() => setPanel(panel === 'upgrade' ? 'none' : 'upgrade')}>
            Upgrade…
          </button>
          <button
            disabled={working || !app.previous_image}
            title={app.previous_image ? `Back to ${app.previous_image}` : 'No earlier version is kept'}
            onClick={() => setPanel('rollback')}
          >
            Roll back…
          </button>
          <button class="danger" disabled={working} onClick={() => setPanel('uninstall')}>
            Uninstall…
          </button>
        </div>
      )}
      <Notice notice={notice} testid="app-notice" />

      {app && panel === 'upgrade' && (
        <UpgradeForm
          name={name}
          op={upgrade}
          onDone={(result) => finished(result, 'Upgraded')}
          onCancel={() => setPanel('none')}
        />
      )}
      {rollback.progress && (rollback.running || rollback.error) && (
        <div class="card">
          <Progress state={rollback.progress} label={`Rolling back ${name}`} />
          <Notice
            notice={rollback.error ? { kind: 'error', text: `The rollback failed: ${rollback.error}` } : null}
            testid="rollback-error"
          />
        </div>
      )}
      {app && panel === 'rollback' && (
        <Dialog title={`Roll back ${name}?`} onClose={() => setPanel('none')} testid="rollback-dialog">
          <p>
            {name} goes back to <strong class="mono">{app.previous_image}</strong>, with the settings and the data it had
            before the last upgrade. What changed in its data since then is lost.
          </p>
          <div class="actions">
            <button
              class="primary"
              onClick={() => {
                setPanel('none');
                void rollback.run('sending the request', (h) => apps.rollback(name, h)).then((r) => finished(r, 'Rolled back'));
              }}
            >
              Roll back
            </button>
            <button onClick={() => setPanel('none')}>Keep this version</button>
          </div>
        </Dialog>
      )}
      {app && panel === 'uninstall' && <UninstallDialog name={name} onClose={() => setPanel('none')} />}

      {app && <Details app={app} />}

      <h2 id="logs-title">Output</h2>
      {!missing && <LogViewer name={name} />}

      <h2 id="events-title">Events</h2>
      {!missing && <AppEvents name={name} />}
    </section>
  );
}

function AppEvents({ name }: { name: string }) {
  const feed = useEventFeed({ name }, EVENTS_KEPT);
  return (
    <div data-testid="app-events">
      <EventList feed={feed} label={`Events of ${name}`} showName={false} />
    </div>
  );
}

function Details({ app }: { app: AppView }) {
  const rows: [string, preact.ComponentChildren][] = [
    ['Version', <span class="mono" data-testid="app-version">{app.image}</span>],
    ['Image id', <span class="mono" title={app.image_id}>{shortId(app.image_id)}</span>],
    ['Source', <span class="mono">{app.source}</span>],
    ['Wanted state', app.desired],
    ['Running since', app.started_at ? `${when(app.started_at)} (${duration(app.uptime_seconds ?? 0)})` : '—'],
    ['CPU limit', cpus(app.cpus)],
    ['Memory limit', app.memory ? bytes(app.memory) : 'none'],
    ['Restarts', String(app.restarts)],
    ['Options', app.args ? <span class="mono">{app.args}</span> : <span class="muted">none</span>],
    ['Container', app.container_id ? <span class="mono">{app.container_id.slice(0, 12)}</span> : '—'],
    ['Data directory', <span class="mono">{app.private_dir}</span>],
    ['Installed', when(app.created_at)],
    ['Previous version', app.previous_image ? <span class="mono">{app.previous_image}</span> : <span class="muted">none kept</span>],
  ];
  return (
    <dl class="details card" data-testid="app-details">
      {rows.map(([term, value]) => (
        <div key={term}>
          <dt>{term}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

function UpgradeForm({
  name,
  op,
  onDone,
  onCancel,
}: {
  name: string;
  op: ReturnType<typeof useOperation>;
  onDone: (app: AppView | undefined) => void;
  onCancel: () => void;
}) {
  const [source, setSource] = useState(emptySource);
  const [args, setArgs] = useState('');
  const [skipHooks, setSkipHooks] = useState(false);
  const [problem, setProblem] = useState<string>();

  const submit = async (e: Event) => {
    e.preventDefault();
    const request = sourceRequest(source);
    if (typeof request === 'string') {
      setProblem(request);
      return;
    }
    setProblem(undefined);
    const result = await op.run('sending the request', (handlers) =>
      apps.upgrade(
        name,
        // Blank options keep the current ones (the daemon's rule for an absent `args`).
        { source: request, args: args.trim() || undefined, skip_data: skipHooks },
        source.kind === 'upload' ? source.file : null,
        handlers,
      ),
    );
    onDone(result);
  };

  const cancel = () =>
    apps.cancel(name).catch((e) => setProblem(errorText(e)));

  return (
    <form class="card form" onSubmit={submit} aria-labelledby="upgrade-title" data-testid="upgrade-form" noValidate>
      <h2 id="upgrade-title">Upgrade {name}</h2>
      <p class="muted">
        The new version must start and stay up through its probation, or the current one comes back with its data.
      </p>
      <SourceFields id="upgrade-source" value={source} onChange={setSource} disabled={op.running} />
      <div class="field">
        <label for="upgrade-args">New container options (blank: keep the current ones)</label>
        <input
          id="upgrade-args"
          class="mono"
          value={args}
          autocomplete="off"
          spellcheck={false}
          disabled={op.running}
          onInput={(e) => setArgs(e.currentTarget.value)}
        />
      </div>
      <label class="choice">
        <input type="checkbox" checked={skipHooks} disabled={op.running} onChange={(e) => setSkipHooks(e.currentTarget.checked)} />
        Skip the data hooks (pre.sh / post.sh and the data backup)
      </label>
      <Notice notice={problem ? { kind: 'error', text: problem } : null} />
      {op.progress && <Progress state={op.progress} label={`Upgrading ${name}`} />}
      <Notice notice={op.error ? { kind: 'error', text: `The upgrade failed: ${op.error}` } : null} testid="upgrade-error" />
      <div class="actions">
        <button type="submit" class="primary" disabled={op.running}>
          {op.running ? 'Upgrading…' : 'Upgrade'}
        </button>
        {op.running ? (
          <button type="button" onClick={cancel}>
            Cancel the upgrade
          </button>
        ) : (
          <button type="button" onClick={onCancel}>
            Close
          </button>
        )}
      </div>
    </form>
  );
}

function UninstallDialog({ name, onClose }: { name: string; onClose: () => void }) {
  const [typed, setTyped] = useState('');
  const [keepData, setKeepData] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  const confirm = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const done = await apps.uninstall(name, keepData);
      flashOnDashboard(`${name} was uninstalled${done.kept_data ? '; its data directory was kept' : ''}.`);
      navigate(href.dashboard);
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  return (
    <Dialog title={`Uninstall ${name}?`} onClose={onClose} testid="uninstall-dialog">
      <form onSubmit={confirm}>
        <p>
          The container, its service and its image are removed
          {keepData ? '; its data directory is kept.' : ', and so is its data directory.'}
        </p>
        <label class="choice">
          <input type="checkbox" checked={keepData} onChange={(e) => setKeepData(e.currentTarget.checked)} />
          Keep the app's data directory
        </label>
        <div class="field">
          <label for="uninstall-confirm">
            Type <strong class="mono">{name}</strong> to confirm
          </label>
          <input
            id="uninstall-confirm"
            value={typed}
            autocomplete="off"
            spellcheck={false}
            onInput={(e) => setTyped(e.currentTarget.value)}
          />
        </div>
        <Notice notice={error ? { kind: 'error', text: error } : null} />
        <div class="actions">
          <button type="submit" class="danger" disabled={busy || typed !== name}>
            {busy ? 'Uninstalling…' : 'Uninstall'}
          </button>
          <button type="button" onClick={onClose} disabled={busy}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}
