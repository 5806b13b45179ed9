// How numbers and times are shown.

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

export function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${seconds % 60}s`;
  return `${seconds}s`;
}

/** Seconds or milliseconds since the epoch, as local date and time. */
export function when(epoch: number, unit: 's' | 'ms' = 's'): string {
  return new Date(unit === 's' ? epoch * 1000 : epoch).toLocaleString();
}

export function cpus(n: number): string {
  return `${Number(n.toFixed(2))} CPU${n === 1 ? '' : 's'}`;
}

/** `sha256:0123…` → `0123456789ab`. */
export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
