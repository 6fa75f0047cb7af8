/**
 * @realtime-hub/client: a dependency-free TypeScript client for realtime-hub.
 *
 * React bindings live in `@realtime-hub/client/react`.
 */

export { HubClient, type SocketPublishOptions } from "./client.js";
export type { HubClientEvents, PresenceChange, PresenceInfo, ResyncInfo, RoomHandlers, StateInfo, SubscribeOptions, SubscribedInfo } from "./events.js";
export type {
  CloseInfo,
  HubClientOptions,
  TokenProvider,
  TransportName,
  TransportOption,
  WebSocketConstructor,
  WebSocketLike,
} from "./options.js";
export { SseParser, encodeSseCursor, type SseMessage, type SseParserHandlers } from "./sse.js";
export type { Subscription } from "./subscription.js";
export { readRoomHistory, type ReadHistoryOptions, type RoomHistory } from "./history.js";
export { Backoff, backoffDelay, resolveBackoff, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
export {
  RoomCursor,
  type CompletedState,
  type ResumePosition,
  type ResyncReason,
  type StateReason,
} from "./cursor.js";
export { Emitter, type Listener, type Unsubscribe } from "./emitter.js";
export { HubError, NotConnectedError, TimeoutError, type ErrorCode, type HubErrorDetails } from "./errors.js";
export {
  HubHttp,
  type FetchLike,
  type HistoryQuery,
  type HubHttpOptions,
  type PublishOptions,
} from "./http.js";
export {
  CloseCode,
  PROTOCOL_VERSION,
  RESERVED_TYPES,
  STATUS_ROOM,
  STATUS_UPDATE,
  isSystemRoom,
  isValidRoomName,
  type HistoryResponse,
  type Json,
  type PresenceResponse,
  type PresenceUser,
  type PublishResult,
  type RoomEvent,
  type RoomInfo,
  type SocketStatus,
  type StateResponse,
  type UserMessage,
  type WelcomeFrame,
} from "./protocol.js";
export type { AnyEventOf, EventOf, EventSchema, UntypedSchema } from "./schema.js";
export { canTransition, type ConnectionState, type StateChange } from "./state.js";
export { resolveHubUrls, type HubUrls } from "./url.js";
