import { useEffect, useState } from 'preact/hooks';
import { rm } from '../api';
import { Notice } from '../components/Notice';
import { errorText, when } from '../format';
import { usePoll } from '../hooks';
import type { RmDeploymentLocation, RmResourceInstance, RmResourceType, RmTransitionStatus } from '../types';

const POLL_MS = 5000;
const STATUS_POLL_MS = 1000;
const TRANSITIONS = ['Install', 'Configure', 'Start', 'Integrity', 'Stop', 'Reconfigure', 'Uninstall'];

interface Overview {
  types: RmResourceType[];
  locations: RmDeploymentLocation[];
  instances: Record<string, RmResourceInstance[]>;
}

async function overview(): Promise<Overview> {
  const [types, locations] = await Promise.all([rm.types(), rm.locations()]);
  const lists = await Promise.all(locations.map((l) => rm.instances(l.name).catch(() => [])));
  return { types, locations, instances: Object.fromEntries(locations.map((l, i) => [l.name, lists[i]])) };
}

const isoTime = (iso?: string | null) => (iso ? when(Date.parse(iso), 'ms') : '—');

export function Resources() {
  const { data, error, refresh } = usePoll(overview, POLL_MS);
  useEffect(() => {
    document.title = 'Resources · berth';
  }, []);
  return (
    <section aria-labelledby="resources-title" data-testid="resources-page">
      <h1 id="resources-title" tabIndex={-1}>
        Resources
      </h1>
      <p class="muted lead">
        What the resource manager (the OSLM Resource Manager API) runs: resource types, where they can be deployed, and the
        instances there with their lifecycle requests.
      </p>
      <Notice notice={error ? { kind: 'error', text: `Cannot read the resource manager: ${error}` } : null} />
      {!data && !error && <p role="status">Loading the resource manager…</p>}
      {data && (
        <>
          <TransitionForm data={data} onFinished={refresh} />
          <h2>Resource types</h2>
          <TypesTable types={data.types} />
          {data.locations.map((location) => (
            <LocationSection key={location.name} location={location} instances={data.instances[location.name] ?? []} />
          ))}
        </>
      )}
    </section>
  );
}

function TypesTable({ types }: { types: RmResourceType[] }) {
  if (types.length === 0) return <p class="empty">No resource types are onboarded.</p>;
  return (
    <div class="table-wrap">
      <table class="stack" data-testid="resource-types">
        <thead>
          <tr>
            <th scope="col">Type</th>
            <th scope="col">State</th>
            <th scope="col">Last changed</th>
          </tr>
        </thead>
        <tbody>
          {types.map((t) => (
            <tr key={t.name}>
              <th scope="row" data-label="Type" class="mono">
                {t.name}
              </th>
              <td data-label="State">{t.state}</td>
              <td data-label="Last changed">{isoTime(t.lastModifiedAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function LocationSection({ location, instances }: { location: RmDeploymentLocation; instances: RmResourceInstance[] }) {
  const status = location.properties.status;
  return (
    <section class="location" aria-labelledby={`loc-${location.name}`} data-testid="location" data-location={location.name}>
      <h2 id={`loc-${location.name}`}>
        Location {location.name}{' '}
        {status && <span class={`badge badge-${status === 'available' ? 'good' : 'bad'}`}>{status}</span>}
      </h2>
      <p class="muted">
        {location.type}
        {location.properties.description && ` · ${location.properties.description}`}
        {location.properties.engine && ` · ${location.properties.engine}`}
      </p>
      {instances.length === 0 ? (
        <p class="empty">No instances here.</p>
      ) : (
        <div class="table-wrap">
          <table class="stack" data-testid="instances">
            <thead>
              <tr>
                <th scope="col">Instance</th>
                <th scope="col">Type</th>
                <th scope="col">State</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span class="visually-hidden">Details</span>
                </th>
              </tr>
            </thead>
            {instances.map((i) => (
              <InstanceRows key={i.resourceId} instance={i} />
            ))}
          </table>
        </div>
      )}
    </section>
  );
}

/** One instance: a row, and when opened its properties and request history. */
function InstanceRows({ instance }: { instance: RmResourceInstance }) {
  const [open, setOpen] = useState(false);
  const detailsId = `inst-${instance.resourceId}`;
  return (
    <tbody data-testid={`instance-${instance.resourceName}`}>
      <tr>
        <th scope="row" data-label="Instance">
          {instance.resourceName}
          <div class="muted mono small">{instance.resourceId}</div>
        </th>
        <td data-label="Type" class="mono">
          {instance.resourceType}
        </td>
        <td data-label="State" data-testid="instance-state">
          {instance.resourceState ?? '—'}
        </td>
        <td data-label="Created">{isoTime(instance.createdAt)}</td>
        <td data-label="">
          <button aria-expanded={open} aria-controls={detailsId} onClick={() => setOpen(!open)}>
            {open ? 'Hide details' : 'Details'}
            <span class="visually-hidden"> of {instance.resourceName}</span>
          </button>
        </td>
      </tr>
      {open && (
        <tr id={detailsId} class="details-row">
          <td colSpan={5}>
            <InstanceDetails instance={instance} />
          </td>
        </tr>
      )}
    </tbody>
  );
}

function InstanceDetails({ instance }: { instance: RmResourceInstance }) {
  const { data: requests, error } = usePoll(() => rm.requests(instance.resourceId), POLL_MS, [instance.resourceId]);
  const properties = Object.entries(instance.properties);
  return (
    <div class="instance-details">
      <h3>Properties</h3>
      {properties.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <dl class="details compact">
          {properties.map(([k, v]) => (
            <div key={k}>
              <dt class="mono">{k}</dt>
              <dd class="mono">{v}</dd>
            </div>
          ))}
        </dl>
      )}
      {instance.internalResourceInstances.length > 0 && (
        <p class="muted">
          Runs as:{' '}
          {instance.internalResourceInstances.map((r) => `${r.type} ${r.name}`).join(', ')}
        </p>
      )}
      <h3>Request history</h3>
      <Notice notice={error ? { kind: 'error', text: error } : null} />
      {requests && <RequestTable requests={requests} />}
    </div>
  );
}

function RequestTable({ requests }: { requests: RmTransitionStatus[] }) {
  if (requests.length === 0) return <p class="muted">No requests.</p>;
  return (
    <table class="stack requests" data-testid="request-history">
      <thead>
        <tr>
          <th scope="col">Transition</th>
          <th scope="col">State</th>
          <th scope="col">Started</th>
          <th scope="col">Finished</th>
        </tr>
      </thead>
      <tbody>
        {requests.map((r) => (
          <tr key={r.requestId}>
            <th scope="row" data-label="Transition">
              {r.transitionName ?? '—'}
              <div class="muted mono small">{r.requestId}</div>
            </th>
            <td data-label="State">
              <RequestState status={r} />
            </td>
            <td data-label="Started">{isoTime(r.startedAt)}</td>
            <td data-label="Finished">{isoTime(r.finishedAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RequestState({ status }: { status: RmTransitionStatus }) {
  const tone = { COMPLETED: 'good', FAILED: 'bad', PENDING: 'busy', IN_PROGRESS: 'busy' }[status.requestState];
  return (
    <>
      <span class={`badge badge-${tone}`} data-testid="request-state">
        {status.requestState}
      </span>
      {status.requestStateReason && <div class="small">{status.requestStateReason}</div>}
    </>
  );
}

interface Row {
  id: number;
  key: string;
  value: string;
}

/** Runs a lifecycle transition (or an operation) and follows its request until it ends. */
function TransitionForm({ data, onFinished }: { data: Overview; onFinished: () => Promise<void> }) {
  const allInstances = Object.values(data.instances).flat();
  const [transition, setTransition] = useState('Install');
  const [type, setType] = useState(data.types[0]?.name ?? '');
  const [location, setLocation] = useState(data.locations[0]?.name ?? '');
  const [resourceName, setResourceName] = useState('');
  const [instanceId, setInstanceId] = useState('');
  const [rows, setRows] = useState<Row[]>([]);
  const [nextRow, setNextRow] = useState(1);
  const [problem, setProblem] = useState<string>();
  const [requestId, setRequestId] = useState<string>();
  const [status, setStatus] = useState<RmTransitionStatus>();
  const installing = transition === 'Install';

  // Follow the request until it ends, then show the instances as they are now.
  useEffect(() => {
    if (!requestId) return;
    let stopped = false;
    const tick = async () => {
      try {
        const s = await rm.status(requestId);
        if (stopped) return;
        setStatus(s);
        if (s.requestState === 'COMPLETED' || s.requestState === 'FAILED') {
          stopped = true;
          await onFinished();
          return;
        }
      } catch (e) {
        setProblem(`Cannot read the request's status: ${errorText(e)}`);
      }
      if (!stopped) timer = setTimeout(tick, STATUS_POLL_MS);
    };
    let timer = setTimeout(tick, 0);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [requestId]);

  const running = status !== undefined && (status.requestState === 'PENDING' || status.requestState === 'IN_PROGRESS');

  const submit = async (e: Event) => {
    e.preventDefault();
    setProblem(undefined);
    const properties = Object.fromEntries(rows.filter((r) => r.key.trim()).map((r) => [r.key.trim(), r.value]));
    if (installing && !resourceName.trim()) return setProblem('Name the new instance.');
    if (!installing && !instanceId) return setProblem('Choose the instance to run it on.');
    try {
      const accepted = await rm.transition(
        installing
          ? { transitionName: transition, resourceType: type, deploymentLocation: location, resourceName: resourceName.trim(), properties }
          : { transitionName: transition, resourceId: instanceId, properties },
      );
      setStatus({ requestId: accepted.requestId, requestState: 'PENDING', resourceId: accepted.resourceId });
      setRequestId(accepted.requestId);
    } catch (err) {
      setProblem(errorText(err));
    }
  };

  const updateRow = (id: number, patch: Partial<Row>) => setRows(rows.map((r) => (r.id === id ? { ...r, ...patch } : r)));

  return (
    <form class="card form" onSubmit={submit} aria-labelledby="transition-title" data-testid="transition-form" noValidate>
      <h2 id="transition-title">Run a transition</h2>
      <div class="grid">
        <div class="field">
          <label for="tr-name">Transition or operation</label>
          <input
            id="tr-name"
            list="tr-names"
            value={transition}
            autocomplete="off"
            onInput={(e) => setTransition(e.currentTarget.value)}
          />
          <datalist id="tr-names">
            {TRANSITIONS.map((t) => (
              <option key={t} value={t} />
            ))}
          </datalist>
        </div>
        {installing ? (
          <>
            <div class="field">
              <label for="tr-type">Resource type</label>
              <select id="tr-type" value={type} onChange={(e) => setType(e.currentTarget.value)}>
                {data.types.map((t) => (
                  <option key={t.name} value={t.name}>
                    {t.name}
                  </option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="tr-location">Deployment location</label>
              <select id="tr-location" value={location} onChange={(e) => setLocation(e.currentTarget.value)}>
                {data.locations.map((l) => (
                  <option key={l.name} value={l.name}>
                    {l.name}
                  </option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="tr-resource-name">New instance name</label>
              <input
                id="tr-resource-name"
                value={resourceName}
                autocomplete="off"
                spellcheck={false}
                onInput={(e) => setResourceName(e.currentTarget.value)}
              />
            </div>
          </>
        ) : (
          <div class="field">
            <label for="tr-instance">Instance</label>
            <select id="tr-instance" value={instanceId} onChange={(e) => setInstanceId(e.currentTarget.value)}>
              <option value="">Choose an instance…</option>
              {allInstances.map((i) => (
                <option key={i.resourceId} value={i.resourceId}>
                  {i.resourceName} ({i.deploymentLocation})
                </option>
              ))}
            </select>
          </div>
        )}
      </div>

      <fieldset class="properties">
        <legend>Properties</legend>
        {rows.length === 0 && <p class="muted">None. Add the ones the resource type asks for.</p>}
        {rows.map((row, index) => (
          <div class="property-row" key={row.id}>
            <input
              aria-label={`Property ${index + 1} name`}
              placeholder="name"
              value={row.key}
              class="mono"
              onInput={(e) => updateRow(row.id, { key: e.currentTarget.value })}
            />
            <input
              aria-label={`Property ${index + 1} value`}
              placeholder="value"
              value={row.value}
              class="mono"
              onInput={(e) => updateRow(row.id, { value: e.currentTarget.value })}
            />
            <button type="button" aria-label={`Remove property ${index + 1}`} onClick={() => setRows(rows.filter((r) => r.id !== row.id))}>
              Remove
            </button>
          </div>
        ))}
        <button
          type="button"
          onClick={() => {
            setRows([...rows, { id: nextRow, key: '', value: '' }]);
            setNextRow(nextRow + 1);
          }}
        >
          Add a property
        </button>
      </fieldset>

      <Notice notice={problem ? { kind: 'error', text: problem } : null} />
      <div role="status" aria-live="polite" data-testid="transition-status">
        {status && (
          <p class="transition-status">
            Request <span class="mono">{status.requestId}</span>: <RequestState status={status} />
          </p>
        )}
      </div>
      <div class="actions">
        <button type="submit" class="primary" disabled={running}>
          {running ? 'Running…' : `Run ${transition || 'transition'}`}
        </button>
      </div>
    </form>
  );
}
