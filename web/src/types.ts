// The shapes of the daemon's API as the UI uses them. They mirror the Rust
// wire types in crates/api/src/types (serde names, snake_case on /v1,
// camelCase on the resource manager's OSLM API).

/** The error body of every /v1 and /ui error. */
export interface ApiErrorBody {
  code: string;
  message: string;
}

/** The resource manager's error body (the OSLM reference implementation's shape). */
export interface RmErrorBody {
  localizedMessage: string;
  url?: string;
  status: number;
}

/** `GET /ui/session`, `POST /ui/login`. */
export interface Session {
  user: string;
  csrf: string;
  method: 'password' | 'certificate';
}

export type AppState =
  | 'installing'
  | 'starting'
  | 'running'
  | 'restarting'
  | 'stopped'
  | 'failed'
  | 'uninstalling'
  | 'upgrading';

export type Health = 'none' | 'starting' | 'healthy' | 'unhealthy';

export interface AppView {
  name: string;
  image: string;
  image_id: string;
  source: string;
  state: AppState;
  health: Health;
  desired: 'running' | 'stopped';
  started_at: number | null;
  uptime_seconds: number | null;
  cpus: number;
  memory: number | null;
  args: string;
  failure: string | null;
  restarts: number;
  container_id: string | null;
  private_dir: string;
  created_at: number;
  previous_image?: string | null;
  previous_image_id?: string | null;
}

export type SourceRequest =
  | { kind: 'upload'; origin: string; size?: number }
  | { kind: 'url'; url: string }
  | { kind: 'registry'; reference: string };

export interface InstallRequest {
  name: string;
  source: SourceRequest;
  args?: string;
}

export interface UpgradeRequest {
  source: SourceRequest;
  args?: string;
  skip_data?: boolean;
}

/** One line of the ndjson answer to an install, upgrade or rollback. */
export type InstallEvent =
  | { event: 'progress'; phase: string; current: number; total: number | null }
  | { event: 'done'; app: AppView }
  | { event: 'error'; error: ApiErrorBody };

export interface Uninstalled {
  name: string;
  kept_data: boolean;
  removed_image: boolean;
}

export interface DaemonInfo {
  version: string;
  ready: boolean;
  instance: string;
  root: string;
  data_root: string;
  engine_endpoint: string;
  engine_version: string | null;
  default_cpus: number;
  apps: number;
  open_operations: number;
  degraded: string | null;
  pid: number;
}

export interface DoctorCheck {
  name: string;
  status: 'ok' | 'warning' | 'problem';
  message: string;
}

export interface DoctorReport {
  checks: DoctorCheck[];
}

export interface EventView {
  id: number;
  /** Milliseconds since the Unix epoch. */
  at: number;
  kind: string;
  name: string;
  data: Record<string, unknown>;
}

/** The `gap` frame: events between `after` and `next` are no longer kept. */
export interface EventGap {
  after: number;
  next: number;
  message: string;
}

export interface SraImage {
  id: string;
  repo_tags: string[];
  label: string;
  containers: number;
  foreign_containers: number;
  config_digest: string | null;
}

export interface SraConfigState {
  image_id: string;
  digest: string;
  entries: number;
  changed: boolean;
}

export interface RmResourceType {
  name: string;
  state: string;
  createdAt: string;
  lastModifiedAt: string;
}

export interface RmDeploymentLocation {
  name: string;
  type: string;
  properties: Record<string, string>;
}

export interface RmResourceInstance {
  resourceId: string;
  resourceName: string;
  resourceType: string;
  resourceManagerId: string;
  deploymentLocation: string;
  properties: Record<string, string>;
  createdAt: string;
  lastModifiedAt: string;
  internalResourceInstances: { id: string; name: string; type: string }[];
  resourceState?: string;
}

export interface RmTransitionRequest {
  deploymentLocation?: string;
  resourceType?: string;
  transitionName: string;
  resourceId?: string;
  resourceName?: string;
  properties: Record<string, string>;
}

export interface RmTransitionAccepted {
  requestId: string;
  requestState: string;
  resourceId: string;
}

export type RmRequestState = 'PENDING' | 'IN_PROGRESS' | 'COMPLETED' | 'FAILED';

export interface RmTransitionStatus {
  requestId: string;
  requestState: RmRequestState;
  requestStateReason?: string | null;
  requestFailureCode?: string | null;
  resourceId: string;
  startedAt?: string | null;
  finishedAt?: string | null;
  transitionName?: string | null;
  resourceType?: string | null;
  deploymentLocation?: string | null;
}
