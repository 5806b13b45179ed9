import { useEffect, useState } from 'preact/hooks';
import { EventList, useEventFeed } from '../components/EventList';

/** Events kept on the page; the daemon keeps far more (`berth events`). */
const KEPT = 500;

export function Events() {
  const [kind, setKind] = useState('');
  const [name, setName] = useState('');
  // The stream is filtered by the daemon; it restarts when the filters are applied.
  const [filters, setFilters] = useState<{ kind?: string; name?: string }>({});
  const feed = useEventFeed(filters, KEPT);

  useEffect(() => {
    document.title = 'Events · berth';
  }, []);

  const apply = (e: Event) => {
    e.preventDefault();
    setFilters({ kind: kind.trim() || undefined, name: name.trim() || undefined });
  };

  return (
    <section aria-labelledby="events-title" data-testid="events-page">
      <h1 id="events-title" tabIndex={-1}>
        Events
      </h1>
      <p class="muted lead">Every change berth makes or sees, newest first (the last {KEPT} on this page).</p>
      <form class="inline-form filters" onSubmit={apply} role="search" aria-label="Filter the events">
        <div class="field">
          <label for="events-kind">Kind starts with</label>
          <input
            id="events-kind"
            value={kind}
            placeholder="app, operation.committed, daemon"
            autocomplete="off"
            spellcheck={false}
            onInput={(e) => setKind(e.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="events-name">About (app or subject name)</label>
          <input
            id="events-name"
            value={name}
            autocomplete="off"
            spellcheck={false}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </div>
        <button type="submit">Apply filters</button>
      </form>
      <EventList feed={feed} label="Events" />
    </section>
  );
}
