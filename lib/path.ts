/** Endpoint path patterns with `:name` parameters (`/ws/device/:deviceId`). */

export type PathMatch = { params: Record<string, string> } | null | 'malformed';
export type PathMatcher = (pathname: string) => PathMatch;

/**
 * Compiles a pattern. Non-strict (the default, as Express and Koa routers) lets one trailing
 * slash differ. Parameters match one non-empty segment and are URL-decoded; a segment whose
 * percent-encoding is broken gives `'malformed'` (answered 400).
 */
export function compilePath(pattern: string, options: { strict: boolean; caseSensitive: boolean }): PathMatcher {
  const names: string[] = [];
  let source = '';
  for (const segment of pattern.split('/').slice(1)) {
    source += '/';
    if (segment.startsWith(':')) {
      names.push(segment.slice(1));
      source += '([^/]+)';
    } else {
      source += segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    }
  }
  if (!options.strict) source = source.replace(/\/$/, '') + '/?';
  const regex = new RegExp(`^${source}$`, options.caseSensitive ? '' : 'i');
  return (pathname) => {
    const m = regex.exec(pathname);
    if (m === null) return null;
    const params: Record<string, string> = {};
    for (let i = 0; i < names.length; i++) {
      try {
        params[names[i]!] = decodeURIComponent(m[i + 1]!);
      } catch {
        return 'malformed';
      }
    }
    return { params };
  };
}

/** A request-target split at its `?`: the raw path and the raw query (no leading `?`). */
export interface RequestTarget {
  path: string;
  query: string;
}

/** A `.` or `..` segment, percent-encoded dots included (WHATWG URL treats `%2e` as a dot). */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/**
 * Splits an origin-form request-target (`/ws?token=…`), or returns null when its path is not
 * canonical: not starting with a single `/`, holding a `\`, an empty segment (`//`), or a `.` /
 * `..` segment, encoded or not. Routers of Express, Koa and Fastify match the raw path, and a
 * proxy rule sees the raw path too; resolving `/x/../ws` to `/ws` as `new URL()` does would let
 * a request reach an endpoint that neither of them thinks it reaches (issue 16). Never throws.
 */
export function splitTarget(target: string): RequestTarget | null {
  let end = target.indexOf('?');
  const hash = target.indexOf('#');
  if (hash !== -1 && (end === -1 || hash < end)) end = hash;
  const path = end === -1 ? target : target.slice(0, end);
  if (path.charCodeAt(0) !== 0x2f || path.includes('\\')) return null;
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i]!;
    // An empty last segment is a trailing slash, which `strict` decides on.
    if (segment === '' ? i < segments.length - 1 : DOT_SEGMENT.test(segment)) return null;
  }
  if (end === -1 || target.charCodeAt(end) === 0x23) return { path, query: '' };
  const queryEnd = target.indexOf('#', end);
  return { path, query: target.slice(end + 1, queryEnd === -1 ? undefined : queryEnd) };
}
