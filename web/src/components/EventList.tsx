import { useEffect, useState } from 'preact/hooks';
import { when } from '../format';
import { followEvents } from '../streams';
import type { EventGap, EventView } from '../types';

export type FeedItem = { type: 'event'; event: EventView } | { type: 'gap'; gap: EventGap; key: string };

export interface Feed {
  /** Newest first, at most `limit`. */
  items: FeedItem[];
  connected: boolean;
  problem?: string;
}

const FLUSH_MS = 100;

/**
 * Follows the event stream with these filters and keeps the newest `limit`
 * items. Arrivals are applied in batches: a fresh connection replays what
 * the daemon keeps (up to many thousands), and one render per event would
 * freeze the page.
 */
export function useEventFeed(filters: { kind?: string; name?: string }, limit: number): Feed {
  const [feed, setFeed] = useState<Feed>({ items: [], connected: false });
  useEffect(() => {
    setFeed({ items: [], connected: false });
    let pending: FeedItem[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    let gaps = 0;
    const flush = () => {
      timer = undefined;
      const arrived = pending.reverse();
      pending = [];
      setFeed((f) => ({ ...f, items: [...arrived, ...f.items].slice(0, limit) }));
    };
    const add = (item: FeedItem) => {
      pending.push(item);
      if (pending.length > limit) pending = pending.slice(-limit);
      timer ??= setTimeout(flush, FLUSH_MS);
    };
    const follow = followEvents(filters, {
      event: (event) => add({ type: 'event', event }),
      gap: (gap) => add({ type: 'gap', gap, key: `gap-${gaps++}` }),
      status: (connected, problem) => setFeed((f) => ({ ...f, connected, problem })),
    });
    return () => {
      follow.stop();
      clearTimeout(timer);
    };
  }, [filters.kind, filters.name, limit]);
  return feed;
}

/** The `data` of an event as a short line (`from: running, to: stopped`). */
function summary(data: Record<string, unknown>): string {
  return Object.entries(data)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(', ');
}

export function EventList({ feed, label, showName = true }: { feed: Feed; label: string; showName?: boolean }) {
  return (
    <>
      <p class="feed-status muted" role="status">
        {feed.connected ? 'Live: new events appear at the top.' : feed.problem ? `Reconnecting: ${feed.problem}` : 'Connecting…'}
      </p>
      {feed.items.length === 0 ? (
        <p class="empty">No events yet.</p>
      ) : (
        <ol class="events" aria-label={label} data-testid="event-list">
          {feed.items.map((item) =>
            item.type === 'gap' ? (
              <li key={item.key} class="event gap">
                {item.gap.message}: older events were trimmed by retention.
              </li>
            ) : (
              <li key={item.event.id} class="event" data-testid="event" data-kind={item.event.kind}>
                <time class="muted" dateTime={new Date(item.event.at).toISOString()}>
                  {when(item.event.at, 'ms')}
                </time>
                <span class={`kind kind-${item.event.kind.split('.')[0]}`}>{item.event.kind}</span>
                {showName && <span class="event-name">{item.event.name}</span>}
                <span class="event-data muted">{summary(item.event.data)}</span>
              </li>
            ),
          )}
        </ol>
      )}
    </>
  );
}
