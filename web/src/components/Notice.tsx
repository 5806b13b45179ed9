export type NoticeKind = 'error' | 'ok' | 'info';

export interface NoticeValue {
  kind: NoticeKind;
  text: string;
}

/**
 * A message about what just happened. Errors are alerts (read out at once);
 * the others are polite status messages. The live region is always in the
 * page so that screen readers pick up the text when it appears.
 */
export function Notice({ notice, testid }: { notice?: NoticeValue | null; testid?: string }) {
  const kind = notice?.kind ?? 'info';
  return (
    <div
      class={notice ? `notice notice-${kind}` : 'notice-empty'}
      role={kind === 'error' ? 'alert' : 'status'}
      data-testid={testid}
    >
      {notice?.text}
    </div>
  );
}
