import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { OperationHandlers } from './api';
import { advance, startProgress, type ProgressState } from './components/Progress';
import { errorText } from './format';

export interface Polled<T> {
  data: T | undefined;
  error: string | undefined;
  /** Fetch again now (after an action changed something). */
  refresh: () => Promise<void>;
}

/**
 * Loads `load()` now and every `intervalMs` while the tab is visible. The
 * daemon has no push for these views, and a few small GETs a second cost it
 * nothing. A failure keeps the last data and reports the error.
 */
export function usePoll<T>(load: () => Promise<T>, intervalMs: number, deps: unknown[] = []): Polled<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const loadRef = useRef(load);
  loadRef.current = load;

  const refresh = useCallback(async () => {
    try {
      setData(await loadRef.current());
      setError(undefined);
    } catch (e) {
      setError(errorText(e));
    }
  }, []);

  useEffect(() => {
    setData(undefined);
    void refresh();
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') void refresh();
    }, intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs, ...deps]);

  return { data, error, refresh };
}

/**
 * The state of one install, upgrade or rollback: its progress while it runs,
 * its error when it failed. The archive's upload drives the bar only until
 * the daemon's own progress lines begin: those count what it has read of
 * that same upload, and two sources would make the bar jump back and forth.
 */
export function useOperation() {
  const [progress, setProgress] = useState<ProgressState | null>(null);
  const [error, setError] = useState<string>();
  const [running, setRunning] = useState(false);

  // The daemon undoes an operation whose client went away: closing or
  // reloading the tab now would cancel it, so the browser asks first.
  useEffect(() => {
    if (!running) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    addEventListener('beforeunload', warn);
    return () => removeEventListener('beforeunload', warn);
  }, [running]);

  const run = useCallback(async <T,>(first: string, start: (handlers: OperationHandlers) => Promise<T>) => {
    setRunning(true);
    setError(undefined);
    setProgress(startProgress(first));
    let daemonSpoke = false;
    try {
      return await start({
        onUpload: (sent, total) => {
          if (!daemonSpoke) setProgress((p) => advance(p, 'uploading the archive', sent, total));
        },
        onProgress: (phase, current, total) => {
          daemonSpoke = true;
          setProgress((p) => advance(p, phase, current, total));
        },
      });
    } catch (e) {
      setError(errorText(e));
      return undefined;
    } finally {
      setRunning(false);
    }
  }, []);

  return { progress, error, running, run };
}
