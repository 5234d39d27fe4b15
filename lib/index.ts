export {
  Broker, createBroker, reportError, type BrokerEvents, type BrokerStats, type ConnectionDetails, type ConnectionFilter, type ConnectionInfo, type NotifyTarget,
  type ServerSubscribeOptions,
} from './broker.js';
export { envelope, type BinaryHandler, type CustomHandler, type EnvelopeOptions } from './protocols/envelope.js';
export { tagged, type TaggedOptions } from './protocols/tagged.js';
export { events, type EventsErrorCode, type EventsOptions } from './protocols/events.js';
export { stream, type StreamBind, type StreamBinding, type StreamOptions } from './protocols/stream.js';
export { grants, grantsAllow } from './grants.js';
export { BrokerError, CloseCode, ERRORS, TERMINAL_CLOSE_CODES, isBrokerError, type ErrorCode } from './errors.js';
export { covers, matches, checkTopic, resolveTopicSyntax, type TopicOptions, type TopicSyntax } from './topics.js';
export { TopicIndex } from './topic-index.js';
export { hashToken, verifyToken, generateToken, safeEqual, redactUrl } from './auth.js';
export { MemoryStore, type MemoryStoreOptions } from './memory-store.js';
export { MemoryBus, MemoryHub } from './memory-bus.js';
export { MemoryRegistry, type MemoryRegistryOptions } from './memory-registry.js';
export { writeHttp } from './handshake.js';
export { adoptLogger, objectFirst, type ObjectFirstLogger } from './logger.js';
export type { AllowedOrigins } from './origin.js';
export type { Store, QueuedDirect, HistoryRecord, HistoryQuery, HistoryPage, HistoryLimits, HistoryPosition, RecoverFrom } from './store.js';
export { positionOf, positionFrom } from './store.js';
export type { Bus, BusMessage, BusHandler, BusGap, BusObserver } from './bus.js';
export type { Registry, RegistryEntry, Admission, AdmitLimits, Removal, Departure, PresenceRecord } from './registry.js';
export type { Protocol, Connection, Delivery, SubscribeResult, PublishResult, DirectResult, PublishOptions, PresenceInfo } from './protocol.js';
export type { BrokerOptions, EndpointOptions, LimitOptions, HistoryOptions } from './options.js';
export type { CompressionOptions } from './deflate.js';
export type {
  Access, Action, Authenticate, Authorize, AuthorizeContext, Credentials, CredentialSource, Filter, Grant, Handshake, Logger, Principal,
} from './types.js';
