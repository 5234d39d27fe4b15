/**
 * PostgresStore's tables, created on first use by idempotent, numbered migrations, applied under
 * an advisory lock so that processes starting together do not race. `p` is the table prefix.
 *
 * - `topics`: one row per topic: its epoch and latest offset, bumped by `INSERT … ON CONFLICT DO
 *   UPDATE … RETURNING` in the statement that inserts the history row (no sequence: an aborted
 *   append leaves no gap). A missing row is a lost history: the topic starts a new epoch under a
 *   new `id`, so rows of the old one are never read again (the sweep removes them).
 * - `history`: the records, keyed by (topic id, offset).
 * - `queue`: offline direct messages, drained by `DELETE … RETURNING`.
 */
import type { Pool } from 'pg';

export function migrations(p: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${p}topics (
       topic text PRIMARY KEY,
       id bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
       epoch text NOT NULL,
       latest bigint NOT NULL
     );
     CREATE TABLE IF NOT EXISTS ${p}history (
       topic_id bigint NOT NULL,
       offs bigint NOT NULL,
       message_id text NOT NULL,
       payload text,
       data bytea,
       sent_at bigint NOT NULL,
       sender text,
       PRIMARY KEY (topic_id, offs)
     );
     CREATE INDEX IF NOT EXISTS ${p}history_sent_at ON ${p}history (sent_at);
     CREATE TABLE IF NOT EXISTS ${p}queue (
       id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       principal text NOT NULL,
       message_id text NOT NULL,
       payload text,
       data bytea,
       sent_at bigint NOT NULL,
       sender text
     );
     CREATE INDEX IF NOT EXISTS ${p}queue_principal ON ${p}queue (principal, id);`,
  ];
}

/** Applies the migrations this database has not seen yet, once, whichever process gets there first. */
export async function migrate(pool: Pool, prefix: string): Promise<void> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`switchyard:${prefix}`]);
    await client.query(`CREATE TABLE IF NOT EXISTS ${prefix}schema (version integer NOT NULL)`);
    const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${prefix}schema`);
    const done = rows[0]?.version ?? 0;
    const steps = migrations(prefix);
    for (let v = done; v < steps.length; v++) await client.query(steps[v]!);
    if (rows.length === 0) await client.query(`INSERT INTO ${prefix}schema (version) VALUES ($1)`, [steps.length]);
    else await client.query(`UPDATE ${prefix}schema SET version = $1`, [steps.length]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw err;
  } finally {
    // A connection that cannot even roll back is destroyed, not handed to the next query.
    client.release(broken);
  }
}
