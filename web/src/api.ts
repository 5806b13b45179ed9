// Every call the UI makes to the daemon goes through here: same origin, the
// session cookie sent by the browser, the CSRF token added to every request
// that changes something, and errors turned into one ApiError whose message
// is the daemon's own (it is written for people).
import type {
  ApiErrorBody,
  AppView,
  DaemonInfo,
  DoctorReport,
  InstallEvent,
  InstallRequest,
  RmDeploymentLocation,
  RmErrorBody,
  RmResourceInstance,
  RmResourceType,
  RmTransitionAccepted,
  RmTransitionRequest,
  RmTransitionStatus,
  Session,
  SraConfigState,
  SraImage,
  Uninstalled,
  UpgradeRequest,
} from './types';

export class ApiError extends Error {
  constructor(
    message: string,
    /** HTTP status; 0 when the daemon could not be reached at all. */
    readonly status: number,
    /** The daemon's error kind (`stale`, `not_found`, …) when it gave one. */
    readonly code?: string,
    /** Seconds from `Retry-After`, on a 429. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

const CSRF_HEADER = 'X-Berth-CSRF';
const RM = '/api/resource-manager';

let csrf = '';
let unauthorized: () => void = () => {};

/** The token of the signed-in session; sent with every non-GET request. */
export function setCsrf(token: string) {
  csrf = token;
}

/** Called when any call is answered 401: the session is gone. */
export function onUnauthorized(handler: () => void) {
  unauthorized = handler;
}

/** For the readers of streams, which use fetch directly. */
export function notifyUnauthorized() {
  unauthorized();
}

const seg = encodeURIComponent;

/** Turns an error response into an ApiError with the server's message. */
async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  return errorFromText(response.status, text, response.headers.get('Retry-After'));
}

function errorFromText(status: number, text: string, retryAfter: string | null): ApiError {
  let message = text.trim() || `the daemon answered ${status}`;
  let code: string | undefined;
  try {
    const body = JSON.parse(text) as Partial<ApiErrorBody & RmErrorBody>;
    message = body.message ?? body.localizedMessage ?? message;
    code = body.code;
  } catch {
    // Not JSON (a proxy's page, say): its text is the best message there is.
  }
  const seconds = retryAfter === null ? undefined : Number.parseInt(retryAfter, 10);
  return new ApiError(message, status, code, Number.isFinite(seconds) ? seconds : undefined);
}

interface CallOptions {
  /** Sent as JSON. */
  json?: unknown;
  /** Sent as it is (a file for an upload). */
  body?: BodyInit;
  headers?: Record<string, string>;
  /** Don't treat a 401 as the end of the session (the login call itself). */
  quiet401?: boolean;
  /** Expect this type instead of JSON; the answer is then a Blob. */
  accept?: string;
}

export async function call<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: options.accept ?? 'application/json', ...options.headers };
  if (method !== 'GET') headers[CSRF_HEADER] = csrf;
  let body = options.body;
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body, credentials: 'same-origin' });
  } catch {
    throw new ApiError('berth is not answering: check that the daemon runs and the network is up', 0);
  }
  if (response.status === 401 && !options.quiet401) unauthorized();
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return undefined as T;
  if (options.accept) return (await response.blob()) as T;
  return (await response.json()) as T;
}

// ---- session ----

export const session = {
  get: () => call<Session>('GET', '/ui/session', { quiet401: true }),
  login: (user: string, password: string) =>
    call<Session>('POST', '/ui/login', { json: { user, password }, quiet401: true }),
  logout: () => call<void>('POST', '/ui/logout', { quiet401: true }),
};

// ---- daemon ----

export const daemon = {
  info: () => call<DaemonInfo>('GET', '/v1/info'),
  doctor: () => call<DoctorReport>('GET', '/v1/doctor'),
};

// ---- apps ----

const app = (name: string, verb = '') => `/v1/apps/${seg(name)}${verb && `/${verb}`}`;

export const apps = {
  list: () => call<AppView[]>('GET', '/v1/apps'),
  show: (name: string) => call<AppView>('GET', app(name)),
  start: (name: string) => call<AppView>('POST', app(name, 'start')),
  stop: (name: string) => call<AppView>('POST', app(name, 'stop')),
  restart: (name: string) => call<AppView>('POST', app(name, 'restart')),
  cancel: (name: string) => call<void>('POST', app(name, 'cancel')),
  uninstall: (name: string, keepData: boolean) =>
    call<Uninstalled>('DELETE', `${app(name)}?keep_data=${keepData}`),
  logsUrl: (name: string, tail: number) => `${app(name, 'logs')}?follow=true&tail=${tail}`,
  install: (request: InstallRequest, file: File | null, handlers: OperationHandlers) =>
    operation('/v1/apps', request, file, handlers),
  upgrade: (name: string, request: UpgradeRequest, file: File | null, handlers: OperationHandlers) =>
    operation(app(name, 'upgrade'), request, file, handlers),
  rollback: (name: string, handlers: OperationHandlers) => operation(app(name, 'rollback'), null, null, handlers),
};

export interface OperationHandlers {
  /** Bytes of the archive sent so far. */
  onUpload?: (sent: number, total: number) => void;
  /** Each progress line of the daemon's ndjson answer. */
  onProgress: (phase: string, current: number, total: number | null) => void;
}

/**
 * An install, upgrade or rollback, answered as a stream of InstallEvent
 * lines. XMLHttpRequest rather than fetch: fetch cannot report how much of
 * an upload was sent, and the archive can be gigabytes. A file goes as
 * multipart/form-data, the `request` part (the JSON) first, as the daemon
 * requires. Resolves with the app once the daemon says `done`.
 */
function operation(path: string, request: object | null, file: File | null, handlers: OperationHandlers) {
  return new Promise<AppView>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.setRequestHeader('Accept', 'application/x-ndjson');
    xhr.setRequestHeader(CSRF_HEADER, csrf);
    let body: XMLHttpRequestBodyInit | null = null;
    if (file && request) {
      const form = new FormData();
      form.append('request', new Blob([JSON.stringify(request)], { type: 'application/json' }));
      form.append('archive', file, file.name);
      body = form;
      xhr.upload.onprogress = (e) => handlers.onUpload?.(e.loaded, e.lengthComputable ? e.total : file.size);
    } else if (request) {
      xhr.setRequestHeader('Content-Type', 'application/json');
      body = JSON.stringify(request);
    }

    let read = 0;
    let outcome: InstallEvent | undefined;
    const consume = (final: boolean) => {
      const text = xhr.responseText;
      const end = final ? text.length : text.lastIndexOf('\n') + 1;
      for (const line of text.slice(read, end).split('\n')) {
        if (!line.trim()) continue;
        const event = JSON.parse(line) as InstallEvent;
        if (event.event === 'progress') handlers.onProgress(event.phase, event.current, event.total);
        else outcome = event;
      }
      read = Math.max(read, end);
    };
    const streamed = () => (xhr.getResponseHeader('Content-Type') ?? '').includes('ndjson');

    xhr.onprogress = () => {
      if (xhr.status === 200 && streamed()) consume(false);
    };
    xhr.onload = () => {
      if (xhr.status === 401) unauthorized();
      if (xhr.status !== 200 || !streamed()) {
        // Refused before the operation began (bad request, wrong session…).
        reject(errorFromText(xhr.status, xhr.responseText, xhr.getResponseHeader('Retry-After')));
        return;
      }
      try {
        consume(true);
      } catch {
        reject(new ApiError('the daemon sent an answer the UI cannot read', xhr.status));
        return;
      }
      if (outcome?.event === 'done') resolve(outcome.app);
      else if (outcome?.event === 'error') reject(new ApiError(outcome.error.message, 200, outcome.error.code));
      else reject(new ApiError('the daemon ended the answer before the operation finished', xhr.status));
    };
    xhr.onerror = () => reject(new ApiError('the connection to berth broke off; the operation may still finish', 0));
    xhr.send(body);
  });
}

// ---- SRA ----

const sraConfig = (image: string) => `/v1/sra/images/${seg(image)}/config`;

export const sra = {
  images: () => call<SraImage[]>('GET', '/v1/sra/images'),
  download: (image: string) => call<Blob>('GET', sraConfig(image), { accept: 'application/gzip' }),
  upload: (image: string, archive: File) =>
    call<SraConfigState>('PUT', sraConfig(image), { body: archive, headers: { 'Content-Type': 'application/gzip' } }),
  copy: (from: string, to: string) => call<SraConfigState>('POST', '/v1/sra/config/copy', { json: { from, to } }),
  reset: (image: string) => call<SraConfigState>('POST', `${sraConfig(image)}/reset`),
};

// ---- resource manager ----

export const rm = {
  types: () => call<RmResourceType[]>('GET', `${RM}/types`),
  locations: () => call<RmDeploymentLocation[]>('GET', `${RM}/topology/deployment-locations`),
  instances: (location: string) =>
    call<RmResourceInstance[]>('GET', `${RM}/topology/deployment-locations/${seg(location)}/instances`),
  instance: (id: string) => call<RmResourceInstance>('GET', `${RM}/topology/instances/${seg(id)}`),
  requests: (id: string) => call<RmTransitionStatus[]>('GET', `${RM}/topology/instances/${seg(id)}/requests`),
  transition: (request: RmTransitionRequest) =>
    call<RmTransitionAccepted>('POST', `${RM}/lifecycle/transitions`, { json: request }),
  status: (requestId: string) =>
    call<RmTransitionStatus>('GET', `${RM}/lifecycle/transitions/${seg(requestId)}/status`),
};
