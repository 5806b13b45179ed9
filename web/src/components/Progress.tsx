import { bytes } from '../format';

/** Where an install, upgrade or rollback is, as the daemon reports it. */
export interface ProgressState {
  /** The phase now under way ("uploading", "loading image", "starting"…). */
  phase: string;
  current: number;
  total: number | null;
  /** Every phase seen, in order: what the operation went through. */
  history: string[];
}

export const startProgress = (phase: string): ProgressState => ({ phase, current: 0, total: null, history: [phase] });

export function advance(state: ProgressState | null, phase: string, current: number, total: number | null): ProgressState {
  const history = state?.history ?? [];
  return {
    phase,
    current,
    total,
    history: history[history.length - 1] === phase ? history : [...history, phase],
  };
}

/**
 * A progress bar with the phase in words. The phase line is a polite live
 * region: a screen reader hears each new phase, not every byte count.
 */
export function Progress({ state, label }: { state: ProgressState; label: string }) {
  const counted = state.total !== null && state.total > 0;
  const percent = counted ? Math.min(100, Math.round((state.current / (state.total as number)) * 100)) : undefined;
  return (
    <div class="progress" data-testid="progress">
      <div class="progress-phase" role="status" aria-live="polite" data-testid="progress-phase">
        {label}: {state.phase}
      </div>
      {/* Two elements, not one with a value that comes and goes: a
          progress bar without a value is the indeterminate one. */}
      {counted ? (
        <progress key="counted" aria-label={`${label} progress`} max={100} value={percent} />
      ) : (
        <progress key="waiting" aria-label={`${label} progress`} />
      )}
      <div class="progress-count muted" aria-hidden="true">
        {counted
          ? `${bytes(state.current)} of ${bytes(state.total as number)} (${percent}%)`
          : state.current > 0
            ? bytes(state.current)
            : '\u00a0'}
      </div>
      {state.history.length > 1 && (
        <ol class="progress-history" aria-label="Steps so far" data-testid="progress-history">
          {state.history.map((phase, i) => (
            <li key={i}>{phase}</li>
          ))}
        </ol>
      )}
    </div>
  );
}
