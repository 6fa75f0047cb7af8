import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { HubClient } from "../client.js";
import type { HubClientOptions } from "../options.js";
import type { EventSchema, UntypedSchema } from "../schema.js";

// The context holds a client of any schema; hooks narrow it with their type parameter.
const HubContext = createContext<HubClient<any> | null>(null);

/** Props of {@link HubProvider}: either a `client` you manage, or `options` to create one. */
export type HubProviderProps<S extends EventSchema = UntypedSchema> = {
  children?: ReactNode;
  /**
   * Connect on mount (default true). An owned client (created from `options`) is
   * also closed on unmount; a passed-in `client` is left open for its owner.
   */
  autoConnect?: boolean;
} & ({ client: HubClient<S>; options?: never } | { client?: never; options: HubClientOptions });

/**
 * Makes a {@link HubClient} available to the hooks below it.
 *
 * ```tsx
 * <HubProvider options={{ url: "http://localhost:8080" }}>
 *   <App />
 * </HubProvider>
 * ```
 *
 * `options` are read once, on mount; to change the hub, remount the provider (e.g.
 * with a `key`) or pass a `client`.
 */
export function HubProvider<S extends EventSchema = UntypedSchema>(props: HubProviderProps<S>): ReactNode {
  const { children, autoConnect = true } = props;
  const [owned] = useState(() => (props.client ? null : new HubClient<S>(props.options)));
  const client = props.client ?? owned!;
  useEffect(() => {
    if (!autoConnect) return undefined;
    client.connect();
    return owned === client ? () => client.close() : undefined;
  }, [client, owned, autoConnect]);
  return <HubContext.Provider value={client}>{children}</HubContext.Provider>;
}

/**
 * The client of the nearest {@link HubProvider}.
 *
 * @throws Error when there is no provider above the component.
 */
export function useHubClient<S extends EventSchema = UntypedSchema>(): HubClient<S> {
  const client = useContext(HubContext);
  if (!client) throw new Error("useHubClient must be used inside <HubProvider>");
  return client as HubClient<S>;
}
