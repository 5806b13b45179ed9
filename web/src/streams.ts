// Long-lived GET streams: an app's log output and the event feed. Both are
// read with fetch and a ReadableStream, and reconnect by themselves with
// backoff until stopped.
//
// The event feed is server-sent events, but not read with EventSource: the
// daemon names each event after its kind (`event: app.running`), and
// EventSource hands named events only to listeners registered for that exact
// name, so a feed of every kind cannot be had from it. It would also hide a
// 401 (the session ended) behind a generic error.
import { notifyUnauthorized } from './api';
import type { EventGap, EventView } from './types';

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 15000;

export interface Follow {
  stop(): void;
}

interface Reader {
  /** Where to connect now (it may depend on what was read already). */
  url(): string;
  chunk(text: string): void;
  /** Connected (again) or disconnected, with the reason. */
  status(connected: boolean, problem?: string): void;
}

function follow(reader: Reader): Follow {
  const abort = new AbortController();
  let retry = RETRY_MIN_MS;
  const run = async () => {
    while (!abort.signal.aborted) {
      let problem = 'the stream ended';
      try {
        const response = await fetch(reader.url(), { signal: abort.signal, credentials: 'same-origin' });
        if (response.status === 401) {
          notifyUnauthorized();
          return;
        }
        if (!response.ok || !response.body) {
          problem = await response.text().then(messageOf, () => `the daemon answered ${response.status}`);
        } else {
          reader.status(true);
          retry = RETRY_MIN_MS;
          const decoder = response.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { value, done } = await decoder.read();
            if (done) break;
            reader.chunk(value);
          }
        }
      } catch {
        if (abort.signal.aborted) return;
        problem = 'the connection to berth broke off';
      }
      reader.status(false, problem);
      await new Promise((r) => setTimeout(r, retry));
      retry = Math.min(retry * 2, RETRY_MAX_MS);
    }
  };
  void run();
  return { stop: () => abort.abort() };
}

function messageOf(text: string): string {
  try {
    return (JSON.parse(text) as { message?: string }).message ?? text;
  } catch {
    return text;
  }
}

/**
 * Follows an app's output. A reconnect asks again for the last lines, so
 * `onReset` is called first to let the viewer start over rather than show
 * lines twice.
 */
export function followLogs(
  url: string,
  onText: (text: string) => void,
  onReset: () => void,
  onStatus: (connected: boolean, problem?: string) => void,
): Follow {
  return follow({
    url: () => url,
    chunk: onText,
    status: (connected, problem) => {
      if (connected) onReset();
      onStatus(connected, problem);
    },
  });
}

export interface EventHandlers {
  event(e: EventView): void;
  gap(g: EventGap): void;
  status(connected: boolean, problem?: string): void;
}

/**
 * Follows `/v1/events?follow=true` with the given filters, starting with the
 * recent ones (`tail`). Ids only grow,
 * so a reconnect asks for what came after the last one seen and nothing is
 * missed or shown twice.
 */
export function followEvents(filters: { kind?: string; name?: string }, handlers: EventHandlers): Follow {
  let lastId: number | null = null;
  let buffer = '';
  const params = () => {
    const p = new URLSearchParams({ follow: 'true' });
    if (filters.kind) p.set('kind', filters.kind);
    if (filters.name) p.set('name', filters.name);
    // The first connection starts with recent events, not the whole log
    // (up to 100,000 kept): a filtered feed looks further back for its few.
    if (lastId !== null) p.set('since', String(lastId));
    else p.set('tail', filters.kind || filters.name ? '5000' : '500');
    return p;
  };
  return follow({
    url: () => `/v1/events?${params()}`,
    chunk(text) {
      buffer += text;
      // Frames end with a blank line; the last piece may be incomplete.
      const frames = buffer.split(/\r?\n\r?\n/);
      buffer = frames.pop() ?? '';
      for (const frame of frames) dispatch(frame);
    },
    status(connected, problem) {
      buffer = '';
      handlers.status(connected, problem);
    },
  });

  function dispatch(frame: string) {
    let name = 'message';
    const data: string[] = [];
    for (const line of frame.split(/\r?\n/)) {
      if (line.startsWith(':')) continue; // keep-alive comment
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length === 0) return;
    try {
      const payload: unknown = JSON.parse(data.join('\n'));
      if (name === 'gap') {
        handlers.gap(payload as EventGap);
      } else {
        const event = payload as EventView;
        lastId = event.id;
        handlers.event(event);
      }
    } catch {
      // A frame that is not JSON is not one of the daemon's; skip it.
    }
  }
}
