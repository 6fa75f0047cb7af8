/** The handle an application holds on one room subscription. */

import { Emitter, type Listener, type Unsubscribe } from "./emitter.js";
import type { HubError } from "./errors.js";
import type { PresenceChange, ResyncInfo, RoomHandlers, StateInfo, SubscribedInfo } from "./events.js";
import type { AnyEventOf, EventOf, EventSchema, UntypedSchema } from "./schema.js";

/** A handle on one subscription to a room. */
export interface Subscription<S extends EventSchema = UntypedSchema> {
  readonly room: string;
  /** Adds a handler for events of one type; returns a function that removes it. */
  on<K extends keyof S & string>(type: K, handler: (event: EventOf<S, K>) => void): Unsubscribe;
  /** Stops this subscription; the room is left when its last subscription stops. */
  unsubscribe(): void;
}

/**
 * Implementation of {@link Subscription}; the client delivers to it, and
 * `unsubscribe` hands it back to the client through `detach`.
 */
export class SubscriptionImpl<S extends EventSchema> implements Subscription<S> {
  private readonly typed = new Emitter<{ [K in keyof S]: EventOf<S, K> }>();
  private active = true;

  constructor(
    readonly room: string,
    private readonly handlers: RoomHandlers<S>,
    private readonly detach: (sub: SubscriptionImpl<S>) => void,
  ) {}

  on<K extends keyof S & string>(type: K, handler: (event: EventOf<S, K>) => void): Unsubscribe {
    return this.typed.on(type, handler as Listener<{ [P in keyof S]: EventOf<S, P> }[K]>);
  }

  unsubscribe(): void {
    if (!this.active) return;
    this.active = false;
    this.typed.clear();
    this.detach(this);
  }

  deliverEvent(event: AnyEventOf<S>): void {
    if (!this.active) return;
    this.handlers.onEvent?.(event);
    this.typed.emit(event.type as keyof S, event as never);
  }

  deliverResync(info: ResyncInfo<S>): void {
    if (this.active) this.handlers.onResync?.(info);
  }

  deliverState(info: StateInfo<S>): void {
    if (this.active) this.handlers.onState?.(info);
  }

  deliverSubscribed(info: SubscribedInfo): void {
    if (this.active) this.handlers.onSubscribed?.(info);
  }

  deliverPresence(change: PresenceChange): void {
    if (this.active) this.handlers.onPresence?.(change);
  }

  deliverError(error: HubError): void {
    if (this.active) this.handlers.onError?.(error);
  }
}

