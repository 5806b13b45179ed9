import { useEffect } from 'preact/hooks';
import { daemon } from '../api';
import { Notice } from '../components/Notice';
import { useDaemonStatus } from '../daemon-status';
import { cpus } from '../format';
import { usePoll } from '../hooks';
import type { DoctorCheck } from '../types';

// The doctor asks the engine, the disk and the certificates; it is slower
// than /v1/info, so it is polled less often.
const POLL_MS = 15000;

const statusWords: Record<DoctorCheck['status'], string> = { ok: 'OK', warning: 'Needs attention', problem: 'Problem' };

/** What each check looks at, for people who don't know berth's internals. */
const checkNames: Record<string, string> = {
  engine: 'Container engine',
  database: 'Database',
  disk: 'Disk space',
  certificates: 'Certificates',
  units: 'Service units',
  orphans: 'Leftover containers',
  journal: 'Unfinished operations',
  hosts: 'Container hosts',
};

export function Health() {
  const { data: report, error, refresh } = usePoll(daemon.doctor, POLL_MS);
  const { info, refresh: refreshInfo } = useDaemonStatus();

  useEffect(() => {
    document.title = 'Health · berth';
  }, []);

  const checks = report?.checks ?? [];
  const bad = checks.filter((c) => c.status !== 'ok');
  return (
    <section aria-labelledby="health-title" data-testid="health-page">
      <div class="page-head">
        <h1 id="health-title" tabIndex={-1}>
          Health
        </h1>
        <button onClick={() => void Promise.all([refresh(), refreshInfo()])}>Check again</button>
      </div>
      <Notice notice={error ? { kind: 'error', text: `The health checks could not run: ${error}` } : null} />
      {report && (
        <p class={bad.length ? 'summary summary-bad' : 'summary summary-good'} role="status" data-testid="health-summary">
          {bad.length === 0
            ? 'Everything berth checks is fine.'
            : `${bad.length} of ${checks.length} checks need attention: ${bad.map((c) => checkNames[c.name] ?? c.name).join(', ')}.`}
        </p>
      )}
      {!report && !error && <p role="status">Running the health checks…</p>}
      <ul class="checks" data-testid="doctor-checks">
        {[...checks]
          .sort((a, b) => rank(a) - rank(b))
          .map((c, i) => (
            <li key={`${c.name}-${i}`} class={`check check-${c.status}`} data-testid="check" data-check={c.name}>
              <span class={`check-status check-status-${c.status}`}>{statusWords[c.status] ?? c.status}</span>
              <strong>{checkNames[c.name] ?? c.name}</strong>
              <p>{c.message}</p>
            </li>
          ))}
      </ul>
      <h2>This berth</h2>
      {info && (
        <dl class="details card" data-testid="daemon-info">
          {(
            [
              ['Version', info.version],
              ['Instance', info.instance],
              ['Engine', `${info.engine_endpoint}${info.engine_version ? ` (Docker ${info.engine_version})` : ''}`],
              ['Engine status', info.degraded ? 'not answering' : info.ready ? 'answering' : 'starting'],
              ['Apps', String(info.apps)],
              ['Operations under way', String(info.open_operations)],
              ['Default CPU limit', cpus(info.default_cpus)],
              ['State directory', info.root],
              ['App data', info.data_root],
              ['Process id', String(info.pid)],
            ] as const
          ).map(([term, value]) => (
            <div key={term}>
              <dt>{term}</dt>
              <dd>{value}</dd>
            </div>
          ))}
        </dl>
      )}
    </section>
  );
}

const order = { problem: 0, warning: 1, ok: 2 } as const;
const rank = (c: DoctorCheck) => order[c.status] ?? 3;
