import { useEffect, useState } from 'preact/hooks';
import { apps } from '../api';
import { Notice } from '../components/Notice';
import { Progress } from '../components/Progress';
import { emptySource, sourceRequest, SourceFields } from '../components/SourceFields';
import { errorText } from '../format';
import { useOperation } from '../hooks';
import { href, navigate } from '../router';

// The daemon's rule for names, checked here too so that a typo is caught
// before a large archive is sent.
const NAME = /^[a-z0-9][a-z0-9_.-]{1,62}$/;

export function nameProblem(name: string): string | undefined {
  if (!NAME.test(name)) return 'A name is 2 to 63 lower-case letters, digits, ".", "_" or "-", starting with a letter or digit.';
  if (name.includes('..') || name.endsWith('.')) return 'A name may not contain ".." or end with ".".';
  return undefined;
}

export function Install() {
  const [name, setName] = useState('');
  const [source, setSource] = useState(emptySource);
  const [args, setArgs] = useState('');
  const [problem, setProblem] = useState<string>();
  const op = useOperation();

  useEffect(() => {
    document.title = 'Install an app · berth';
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    const request = sourceRequest(source);
    const bad = nameProblem(name) ?? (typeof request === 'string' ? request : undefined);
    setProblem(bad);
    if (bad || typeof request === 'string') return;
    const installed = await op.run('sending the request', (handlers) =>
      apps.install({ name, source: request, args: args.trim() }, source.kind === 'upload' ? source.file : null, handlers),
    );
    // Only if the user is still here: they may have gone on to another page meanwhile.
    if (installed && location.hash === href.install) navigate(href.app(installed.name));
  };

  return (
    <section aria-labelledby="install-title" data-testid="install-page">
      <p class="crumbs">
        <a href={href.dashboard}>Apps</a> /
      </p>
      <h1 id="install-title" tabIndex={-1}>
        Install an app
      </h1>
      <form class="card form" onSubmit={submit} noValidate>
        <div class="field">
          <label for="install-name">Name</label>
          <input
            id="install-name"
            value={name}
            required
            autocomplete="off"
            spellcheck={false}
            aria-describedby="install-name-help"
            disabled={op.running}
            onInput={(e) => setName(e.currentTarget.value.trim())}
          />
          <small id="install-name-help" class="muted">
            Names the container, its data directory and its service. Lower-case letters, digits, ".", "_", "-".
          </small>
        </div>
        <SourceFields id="install-source" value={source} onChange={setSource} disabled={op.running} />
        <div class="field">
          <label for="install-args">Container options (optional)</label>
          <input
            id="install-args"
            value={args}
            class="mono"
            placeholder="-e MODE=edge -p 8080:80"
            autocomplete="off"
            spellcheck={false}
            aria-describedby="install-args-help"
            disabled={op.running}
            onInput={(e) => setArgs(e.currentTarget.value)}
          />
          <small id="install-args-help" class="muted">
            docker run style options: environment, ports, volumes, limits.
          </small>
        </div>
        <Notice notice={problem ? { kind: 'error', text: problem } : null} />
        {op.progress && <Progress state={op.progress} label={`Installing ${name}`} />}
        <Notice notice={op.error ? { kind: 'error', text: `The install failed: ${op.error}` } : null} testid="install-error" />
        <div class="actions">
          <button type="submit" class="primary" disabled={op.running}>
            {op.running ? 'Installing…' : 'Install'}
          </button>
          {op.running && (
            <button type="button" onClick={() => void apps.cancel(name).catch((e) => setProblem(errorText(e)))}>
              Cancel the install
            </button>
          )}
        </div>
      </form>
    </section>
  );
}
