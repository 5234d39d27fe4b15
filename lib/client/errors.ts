/**
 * The client's one error type. `code` is the server's numeric Error code (seed 001: 400, 403,
 * 404, 429…), a close code for a terminal close (4001, 4003, 4009), or one of the client's own
 * string codes below.
 */
export type ClientErrorCode =
  /** No answer within the request's timeout. */
  | 'TIMEOUT'
  /** The connection dropped (or was not up) while the request was pending. */
  | 'DISCONNECTED'
  /** The client was closed. */
  | 'CLOSED'
  /** A user callback (listener, getToken) threw. */
  | 'CALLBACK'
  /** getToken failed. */
  | 'TOKEN';

export class SwitchyardError extends Error {
  override readonly name = 'SwitchyardError';
  readonly code: number | ClientErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: number | ClientErrorCode, message: string, details: Record<string, unknown> = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.details = details;
  }
}

/** Close codes after which retrying with the same credentials cannot help (README "Close codes"). */
export const TERMINAL_CLOSE_CODES: readonly number[] = [4001, 4003, 4009];
/** The token was revoked or expired while connected: get a fresh one, then reconnect. */
export const TOKEN_EXPIRED_CLOSE_CODE = 4002;
