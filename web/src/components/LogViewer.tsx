import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { apps } from '../api';
import { followLogs } from '../streams';

const TAIL = 200;
/** Lines kept on the page; older ones fall off the top. */
const KEEP = 2000;

/**
 * An app's output, followed live. It sticks to the bottom while the reader
 * is there and stays put once they scroll up to read.
 */
export function LogViewer({ name }: { name: string }) {
  const [lines, setLines] = useState<string[]>([]);
  const [following, setFollowing] = useState(true);
  const [status, setStatus] = useState('Waiting for output…');
  const box = useRef<HTMLPreElement>(null);
  const atBottom = useRef(true);

  useEffect(() => {
    if (!following) {
      setStatus('Paused.');
      return;
    }
    let partial = '';
    const follow = followLogs(
      apps.logsUrl(name, TAIL),
      (text) => {
        const parts = (partial + text).split('\n');
        partial = parts.pop() ?? '';
        if (parts.length) setLines((old) => [...old, ...parts].slice(-KEEP));
      },
      () => {
        partial = '';
        setLines([]);
      },
      // The daemon answers once the app writes something, so "connected"
      // also means output has begun.
      (connected, problem) => setStatus(connected ? 'Following the output live.' : `Not following: ${problem}. Retrying…`),
    );
    return () => follow.stop();
  }, [name, following]);

  useLayoutEffect(() => {
    const el = box.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [lines]);

  return (
    <div class="logs">
      <div class="logs-head">
        <label class="choice">
          <input type="checkbox" checked={following} onChange={(e) => setFollowing(e.currentTarget.checked)} />
          Follow
        </label>
        <span class="muted">{status}</span>
      </div>
      <pre
        ref={box}
        class="log-box"
        role="log"
        aria-live="off"
        aria-label={`Output of ${name}`}
        tabIndex={0}
        data-testid="app-logs"
        onScroll={(e) => {
          const el = e.currentTarget;
          atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {lines.length ? lines.join('\n') : <span class="muted">No output yet.</span>}
      </pre>
    </div>
  );
}
