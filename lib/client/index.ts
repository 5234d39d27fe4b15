/**
 * `switchyard/client`: a typed client for the envelope protocol, for browsers (ES module) and
 * Node (pass `ws` as `WebSocket`). Only re-exports.
 */
export { Client, createClient, type ClientEvents, type ClientOptions, type ClientState, type DirectMessage, type RequestOptions, type StateEvent } from './client.js';
export { Subscription, type Message, type SubscribeOptions, type SubscriptionEvents, type SubscriptionState, type SubscriptionStateEvent } from './subscription.js';
export { SwitchyardError, TERMINAL_CLOSE_CODES, type ClientErrorCode } from './errors.js';
export { backoffDelay, type BackoffOptions } from './backoff.js';
export type { TopicSyntax } from './topics.js';
export type { WebSocketConstructor, WebSocketLike } from './socket.js';
export type * from '../protocols/envelope-frames.js';
