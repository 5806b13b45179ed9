import { href } from '../router';
import { useDaemonStatus } from '../daemon-status';

/**
 * Across the top of every page while berth runs degraded: what it means for
 * the user in plain words first, the daemon's own explanation after.
 */
export function DegradedBanner() {
  const { info, unreachable } = useDaemonStatus();
  let headline: string | undefined;
  let detail: string | undefined;
  if (unreachable) {
    headline = 'berth is not answering. The page shows what it knew last and updates once berth is back.';
    detail = unreachable;
  } else if (info?.degraded) {
    headline =
      'The container engine is not answering. Apps keep their last state; berth reconnects by itself. Until then nothing can be installed or changed.';
    detail = `${capitalize(info.degraded)}.`;
  } else if (info && !info.ready) {
    headline = 'berth is starting: it is waiting for the container engine to finish its start-up checks.';
  }
  return (
    <div role="status" aria-live="assertive" class="banner-slot">
      {headline && (
        <div class="banner" data-testid="degraded-banner">
          <strong class="banner-headline">{headline}</strong>
          {detail && (
            <details class="banner-detail">
              <summary>What berth says</summary>
              {detail}
            </details>
          )}
          <a href={href.health}>See the health checks</a>
        </div>
      )}
    </div>
  );
}

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
