/** The `cluster` block as the server consumes it (validated by config/cluster-schema.ts). */
export interface ClusterConfig {
  /** redis:// or rediss:// URL, possibly with a password: never log it unredacted */
  redis: string
  /** this process; unique in the cluster */
  replicaId: string
  /** how long a silent holder keeps a session */
  leaseMs: number
  /** entries kept per session stream (trimmed approximately) */
  streamMaxLen: number
  keyPrefix: string
}
