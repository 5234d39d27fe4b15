/**
 * The part of the WHATWG WebSocket the client uses: browsers' `WebSocket`, Node 22's global one,
 * and the `ws` package (pass it as `options.WebSocket` on Node 20) all fit.
 */
/**
 * A handler type checked bivariantly (method syntax), so implementations whose event types carry
 * more fields than the client reads (`ws`'s MessageEvent has `type` and `target`) still fit.
 */
type Handler<E> = { handle(event: E): void }['handle'];

export interface WebSocketLike {
  binaryType: string;
  send(data: string | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<never> | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;
