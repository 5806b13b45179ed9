// Whether berth and its container engine answer, for the banner on every
// page. /v1/info reports `degraded` while the engine is lost (it answers
// without asking the engine, so it is quick even then); it is polled rather
// than followed on the event stream so that each open tab holds one
// connection less (browsers allow six per host).
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { daemon } from './api';
import { usePoll } from './hooks';
import type { DaemonInfo } from './types';

const POLL_MS = 4000;

export interface DaemonStatus {
  info?: DaemonInfo;
  /** Set when /v1/info itself failed: berth does not answer. */
  unreachable?: string;
  refresh: () => Promise<void>;
}

const Context = createContext<DaemonStatus>({ refresh: async () => {} });

export function useDaemonStatusPoll(): DaemonStatus {
  const { data, error, refresh } = usePoll(daemon.info, POLL_MS);
  return { info: data, unreachable: error, refresh };
}

export const DaemonStatusProvider = Context.Provider;
export const useDaemonStatus = () => useContext(Context);
