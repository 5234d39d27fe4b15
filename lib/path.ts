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
