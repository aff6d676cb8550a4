/** A session as the routes, the metrics and the app use it: held in this process, or a replica's side of a cluster session. */
import type { ClusterSession } from './cluster/cluster-session.js'
import type { BridgeSession } from './session/bridge-session.js'

export type Session = BridgeSession | ClusterSession
