/**
 * React bindings of @realtime-hub/client. React is a peer dependency; import the
 * styles once with `import "@realtime-hub/client/styles.css"`.
 */

export { HubProvider, useHubClient, type HubProviderProps } from "./context.js";
export {
  useConnectionState,
  useHubEvent,
  usePresence,
  useRoom,
  useRoomState,
  useSocketStatus,
  useTransport,
  type KeyedRoomState,
  type KeyedRoomStatus,
  type PresenceState,
  type RoomState,
  type SocketStatusState,
  type UseRoomOptions,
} from "./hooks.js";
export {
  ConnectionStatus,
  DEFAULT_CONNECTION_LABELS,
  DEFAULT_TRANSPORT_LABELS,
  type ConnectionStatusProps,
  type Theme,
} from "./ConnectionStatus.js";
export {
  SocketStatusIndicator,
  formatDuration,
  healthOf,
  type Health,
  type SocketStatusIndicatorProps,
  type SocketStatusVariant,
} from "./SocketStatusIndicator.js";
