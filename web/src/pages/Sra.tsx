import { useEffect, useState } from 'preact/hooks';
import { sra } from '../api';
import { Dialog } from '../components/Dialog';
import { Notice, type NoticeValue } from '../components/Notice';
import { errorText, shortId } from '../format';
import { usePoll } from '../hooks';
import type { SraConfigState, SraImage } from '../types';

const POLL_MS = 10000;

/** How an image is called on the page: its first tag, else its short id. */
const title = (image: SraImage) => image.repo_tags[0] ?? shortId(image.id);

/** How it is named to the daemon: the tag when it has one, so that the daemon's messages name it as the user does. */
const ref = (image: SraImage) => image.repo_tags[0] ?? image.id;

/** `vendor/sra:1` → `vendor-sra-1-config.tar.gz`. */
const downloadName = (image: SraImage) => `${title(image).replace(/[^A-Za-z0-9._-]+/g, '-')}-config.tar.gz`;

export function Sra() {
  const { data: images, error, refresh } = usePoll(sra.images, POLL_MS);
  useEffect(() => {
    document.title = 'SRA images · berth';
  }, []);
  return (
    <section aria-labelledby="sra-title" data-testid="sra-page">
      <h1 id="sra-title" tabIndex={-1}>
        Storage replication adapters
      </h1>
      <p class="muted lead">
        The SRA images loaded on this appliance and their configuration (<code>/srm/sra/conf</code>). Download it, change
        it and upload it back; copy it to a newer version of the adapter; or put back the one the image shipped with.
      </p>
      <Notice notice={error ? { kind: 'error', text: `Cannot list the SRA images: ${error}` } : null} />
      {images === undefined && !error && <p role="status">Loading the SRA images…</p>}
      {images?.length === 0 && <p class="empty">No SRA images are loaded. Load one with <code>berth sra load</code>.</p>}
      <div class="cards">
        {images?.map((image) => (
          <SraCard key={image.id} image={image} images={images} refresh={refresh} />
        ))}
      </div>
    </section>
  );
}

function SraCard({ image, images, refresh }: { image: SraImage; images: SraImage[]; refresh: () => Promise<void> }) {
  const [notice, setNotice] = useState<NoticeValue | null>(null);
  const [file, setFile] = useState<File | null>(null);
  const [copyTo, setCopyTo] = useState('');
  const [confirmReset, setConfirmReset] = useState(false);
  const [busy, setBusy] = useState(false);
  const id = `sra-${shortId(image.id)}`;
  const others = images.filter((i) => i.id !== image.id);

  const act = async (pending: string, action: () => Promise<SraConfigState>, done: (s: SraConfigState) => string) => {
    setBusy(true);
    setNotice({ kind: 'info', text: pending });
    try {
      const state = await action();
      setNotice({ kind: 'ok', text: done(state) });
      await refresh();
    } catch (e) {
      // The daemon's message says what to do, a stale upload's included.
      setNotice({ kind: 'error', text: errorText(e) });
    } finally {
      setBusy(false);
    }
  };

  // Fetched, then handed to the browser as a file: a plain link would save
  // an error's JSON as if it were the archive.
  const download = async () => {
    setNotice({ kind: 'info', text: 'Preparing the download…' });
    try {
      const archive = await sra.download(ref(image));
      const url = URL.createObjectURL(archive);
      const link = Object.assign(document.createElement('a'), { href: url, download: downloadName(image) });
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      setNotice({ kind: 'ok', text: `Downloaded ${downloadName(image)}.` });
    } catch (e) {
      setNotice({ kind: 'error', text: errorText(e) });
    }
  };

  const upload = (e: Event) => {
    e.preventDefault();
    if (!file) {
      setNotice({ kind: 'error', text: 'Choose a configuration archive (.tar.gz) first.' });
      return;
    }
    void act(
      `Uploading ${file.name}…`,
      () => sra.upload(ref(image), file),
      (s) => `Configuration uploaded: ${s.entries} ${s.entries === 1 ? 'entry' : 'entries'}, version ${s.digest.slice(0, 12)}.`,
    );
  };

  const copy = (e: Event) => {
    e.preventDefault();
    const target = others.find((i) => i.id === copyTo);
    if (!target) return;
    void act(
      `Copying the configuration to ${title(target)}…`,
      () => sra.copy(ref(image), ref(target)),
      (s) => (s.changed ? `Configuration copied to ${title(target)}.` : `${title(target)} already had this configuration.`),
    );
  };

  return (
    <article class="card sra" aria-labelledby={`${id}-title`} data-testid="sra-image" data-refs={[image.id, ...image.repo_tags].join(' ')}>
      <h2 id={`${id}-title`} class="mono">
        {title(image)}
      </h2>
      <dl class="details compact">
        <div>
          <dt>Adapter</dt>
          <dd>{image.label}</dd>
        </div>
        <div>
          <dt>Image id</dt>
          <dd class="mono" title={image.id}>
            {shortId(image.id)}
          </dd>
        </div>
        <div>
          <dt>Other tags</dt>
          <dd class="mono">{image.repo_tags.slice(1).join(', ') || '—'}</dd>
        </div>
        <div>
          <dt>Execution containers</dt>
          <dd>
            {image.containers}
            {image.foreign_containers > 0 && ` (and ${image.foreign_containers} of another runner)`}
          </dd>
        </div>
        <div>
          <dt>Configuration version</dt>
          <dd class="mono" data-testid="sra-digest">
            {image.config_digest ? image.config_digest.slice(0, 12) : 'factory (never changed)'}
          </dd>
        </div>
      </dl>

      <div class="sra-actions">
        <button disabled={busy} onClick={download} data-testid="sra-download">
          Download configuration
        </button>
        <button class="danger" disabled={busy} onClick={() => setConfirmReset(true)}>
          Reset to factory…
        </button>
      </div>

      <form class="inline-form" onSubmit={upload}>
        <div class="field">
          <label for={`${id}-upload`}>Upload a changed configuration (.tar.gz)</label>
          <input
            id={`${id}-upload`}
            type="file"
            accept=".tar.gz,.tgz,application/gzip"
            data-testid="sra-upload-file"
            onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)}
          />
        </div>
        <button type="submit" disabled={busy}>
          Upload
        </button>
      </form>

      {others.length > 0 && (
        <form class="inline-form" onSubmit={copy}>
          <div class="field">
            <label for={`${id}-copy`}>Copy this configuration to</label>
            <select id={`${id}-copy`} value={copyTo} onChange={(e) => setCopyTo(e.currentTarget.value)}>
              <option value="">Choose an image…</option>
              {others.map((o) => (
                <option key={o.id} value={o.id}>
                  {title(o)}
                </option>
              ))}
            </select>
          </div>
          <button type="submit" disabled={busy || !copyTo}>
            Copy
          </button>
        </form>
      )}

      <Notice notice={notice} testid="sra-notice" />

      {confirmReset && (
        <Dialog title={`Reset the configuration of ${title(image)}?`} onClose={() => setConfirmReset(false)} testid="sra-reset-dialog">
          <p>The configuration the image shipped with replaces the current one. Changes made to it are lost.</p>
          <div class="actions">
            <button
              class="danger"
              onClick={() => {
                setConfirmReset(false);
                void act('Resetting…', () => sra.reset(ref(image)), () => 'The factory configuration is back.');
              }}
            >
              Reset
            </button>
            <button onClick={() => setConfirmReset(false)}>Cancel</button>
          </div>
        </Dialog>
      )}
    </article>
  );
}
