import type { SourceRequest } from '../types';

export type SourceKind = 'upload' | 'registry' | 'url';

export interface SourceChoice {
  kind: SourceKind;
  reference: string;
  url: string;
  file: File | null;
}

export const emptySource = (): SourceChoice => ({ kind: 'upload', reference: '', url: '', file: null });

/** The request's `source`, or why it cannot be sent yet. */
export function sourceRequest(choice: SourceChoice): SourceRequest | string {
  switch (choice.kind) {
    case 'upload':
      return choice.file ? { kind: 'upload', origin: choice.file.name, size: choice.file.size } : 'Choose an image archive file.';
    case 'registry':
      return choice.reference.trim() ? { kind: 'registry', reference: choice.reference.trim() } : 'Enter an image reference.';
    case 'url':
      return /^https?:\/\/\S+$/.test(choice.url.trim())
        ? { kind: 'url', url: choice.url.trim() }
        : 'Enter an http:// or https:// address of an image archive.';
  }
}

const kinds: { kind: SourceKind; label: string }[] = [
  { kind: 'upload', label: 'Archive file' },
  { kind: 'registry', label: 'Registry image' },
  { kind: 'url', label: 'Web address (URL)' },
];

/** Where the image comes from: an archive file from this computer, a registry, or a URL. */
export function SourceFields({
  id,
  value,
  onChange,
  disabled,
}: {
  id: string;
  value: SourceChoice;
  onChange: (next: SourceChoice) => void;
  disabled?: boolean;
}) {
  const set = (patch: Partial<SourceChoice>) => onChange({ ...value, ...patch });
  return (
    <fieldset class="source" disabled={disabled}>
      <legend>Image source</legend>
      <div class="choices" role="radiogroup">
        {kinds.map(({ kind, label }) => (
          <label key={kind} class="choice">
            <input
              type="radio"
              name={`${id}-kind`}
              value={kind}
              checked={value.kind === kind}
              onChange={() => set({ kind })}
            />
            {label}
          </label>
        ))}
      </div>
      {value.kind === 'upload' && (
        <div class="field">
          <label for={`${id}-file`}>Image archive (.tar or .tar.gz from docker save)</label>
          <input
            id={`${id}-file`}
            type="file"
            accept=".tar,.tar.gz,.tgz,application/gzip,application/x-tar"
            data-testid={`${id}-file`}
            onChange={(e) => set({ file: e.currentTarget.files?.[0] ?? null })}
          />
        </div>
      )}
      {value.kind === 'registry' && (
        <div class="field">
          <label for={`${id}-reference`}>Image reference</label>
          <input
            id={`${id}-reference`}
            value={value.reference}
            placeholder="registry.example:5000/vendor/app:1.2"
            autocomplete="off"
            spellcheck={false}
            onInput={(e) => set({ reference: e.currentTarget.value })}
          />
        </div>
      )}
      {value.kind === 'url' && (
        <div class="field">
          <label for={`${id}-url`}>Archive URL</label>
          <input
            id={`${id}-url`}
            type="url"
            value={value.url}
            placeholder="https://downloads.example/app-1.2.tar.gz"
            autocomplete="off"
            spellcheck={false}
            onInput={(e) => set({ url: e.currentTarget.value })}
          />
        </div>
      )}
    </fieldset>
  );
}
