// postgres.js (`postgres`) in its default settings through pgcat-py.
//
// postgres.js prepares every static query as a named statement (`prepare: true`), pipelines
// queries on its connections (many Parse/Bind/Execute before a Sync, Flush to get
// descriptions early) and learns a statement's description once for the whole pool. With a
// pool of N connections to the proxy and fewer servers behind it (transaction mode), every
// connection's statements meet servers that never saw them. Each of ROUNDS rounds runs, all
// concurrently: more queries than connections (so they pipeline) of different result types,
// `sql.begin` transactions that write (every 5th one rolled back by throwing), a transaction
// that pipelines its queries, a `sql.batch`, and a burst of pipelined queries on one reserved
// connection. Every answer is checked; the first error or wrong answer ends the script with
// exit code 1 and a line saying which query failed, with the SQLSTATE.
//
// Usage: node postgresjs.mjs --host=127.0.0.1 --port=6432 --clients=12 --rounds=30 --table=t
// (or PROXY_HOST, PROXY_PORT, CLIENTS, ROUNDS, TABLE). The table must exist:
//   CREATE TABLE t (id serial PRIMARY KEY, client int NOT NULL, round int NOT NULL, note text)
import postgres from 'postgres'

function option(name, envName, fallback) {
  const prefix = `--${name}=`
  const arg = process.argv.slice(2).find(a => a.startsWith(prefix))
  if (arg !== undefined) return arg.slice(prefix.length)
  if (process.env[envName] !== undefined) return process.env[envName]
  return fallback
}

const HOST = option('host', 'PROXY_HOST', '127.0.0.1')
const PORT = Number(option('port', 'PROXY_PORT', '6432'))
const CLIENTS = Number(option('clients', 'CLIENTS', '12'))
const ROUNDS = Number(option('rounds', 'ROUNDS', '30'))
const TABLE = option('table', 'TABLE', 'node_postgresjs')
const DEADLINE_S = Number(option('deadline', 'DEADLINE_S', '150'))
const BURST = 20 // pipelined queries on one reserved connection per round

let queries = 0
const backends = new Set() // server pids seen

function fail(message) {
  console.error(`FAIL postgresjs: ${message}`)
  process.exit(1)
}

function describeError(err) {
  // A server error has a 5-character SQLSTATE; a driver or socket error a name of its own.
  const code = !err || !err.code ? ''
    : /^[0-9A-Z]{5}$/.test(err.code) ? ` (SQLSTATE ${err.code})` : ` (${err.code})`
  const query = err && err.query ? ` [${String(err.query).replace(/\s+/g, ' ').trim()}]` : ''
  return `${err && err.message ? err.message : String(err)}${code}${query}`
}

function check(what, actual, expected) {
  const a = JSON.stringify(actual)
  const e = JSON.stringify(expected)
  if (a !== e) throw new Error(`wrong answer for ${what}: got ${a}, expected ${e}`)
}

// Rows without the Result array's extra properties (count, command, columns, ...).
const rows = result => Array.from(result, row => ({ ...row }))

// Awaits a query; on error, names the place it was sent from.
async function answer(where, query) {
  try {
    const result = await query
    queries += 1
    return result
  } catch (err) {
    const wrapped = new Error(`${where}: ${describeError(err)}`)
    throw wrapped
  }
}

if (!/^[a-z_][a-z0-9_]*$/.test(TABLE)) fail(`bad table name ${JSON.stringify(TABLE)}`)
setTimeout(() => fail(`not done after ${DEADLINE_S} s (${queries} queries answered)`),
  DEADLINE_S * 1000).unref()

const sql = postgres({
  host: HOST, port: PORT, username: 'app', password: 'app', database: 'app',
  max: CLIENTS, // N client connections to the proxy
  prepare: true, // the default, spelled out: named statements for every static query
  onnotice: false,
  connect_timeout: 30,
  idle_timeout: 0,
  connection: { application_name: 'postgresjs' },
})
const table = sql(TABLE)

// Plain queries of different result types; 3 per connection so they pipeline.
async function plainQueries(round) {
  const tasks = []
  for (let i = 0; i < CLIENTS * 3; i++) {
    const where = `round ${round} query ${i}`
    if (i % 3 === 0) {
      tasks.push(answer(`${where} (add)`,
        sql`SELECT ${round}::int + ${i}::int AS v, pg_backend_pid() AS pid`)
        .then(r => {
          check(`${where} add`, [{ v: r[0].v }], [{ v: round + i }])
          backends.add(r[0].pid)
        }))
    } else if (i % 3 === 1) {
      const count = (round + i) % 5 + 1
      tasks.push(answer(`${where} (series)`,
        sql`SELECT g AS n, 'row ' || g || ${'/' + i}::text AS label
            FROM generate_series(1, ${count}::int) AS g`)
        .then(r => check(`${where} series`, rows(r),
          Array.from({ length: count }, (_, k) => ({ n: k + 1, label: `row ${k + 1}/${i}` })))))
    } else {
      tasks.push(answer(`${where} (types)`,
        sql`SELECT upper(${`q${i}r${round}`}::text) AS s, ${`${round}.25`}::numeric * 2 AS d,
                   ${round % 2 === 0}::boolean AS b, ${{ q: i, r: round }}::jsonb AS j,
                   ${String(i + 1)}::bigint * 1000000 AS big, NULL::int AS z,
                   ARRAY[${round}::int, 7] AS arr`)
        .then(r => check(`${where} types`, rows(r), [{
          s: `Q${i}R${round}`, d: `${2 * round}.50`, b: round % 2 === 0, j: { q: i, r: round },
          big: String((i + 1) * 1000000), z: null, arr: [round, 7],
        }])))
    }
  }
  await Promise.all(tasks)
}

// Thrown in a transaction to roll it back on purpose.
class RollbackOnPurpose extends Error {}

// One `sql.begin` per connection that writes a row; every 5th round it throws, which rolls
// the transaction back. Resolves with the number of rows committed.
async function transactions(round) {
  const rollback = round % 5 === 4
  const tasks = []
  for (let c = 0; c < CLIENTS; c++) {
    const where = `round ${round} transaction ${c}`
    const tx = sql.begin(async tx => {
      const before = await answer(`${where} count before`,
        tx`SELECT count(*)::int AS c FROM ${table} WHERE client = ${c}`)
      const inserted = await answer(`${where} insert`,
        tx`INSERT INTO ${table} (client, round, note)
           VALUES (${c}, ${round}, ${`postgresjs ${c}/${round}`}) RETURNING client, round`)
      check(`${where} insert`, rows(inserted), [{ client: c, round }])
      const after = await answer(`${where} count after`,
        tx`SELECT count(*)::int AS c FROM ${table} WHERE client = ${c}`)
      check(`${where} count inside the transaction`, after[0].c, before[0].c + 1)
      if (rollback) throw new RollbackOnPurpose()
      return 1
    }).catch(err => {
      if (err instanceof RollbackOnPurpose) return 0
      throw err instanceof Error && err.message.startsWith(where) ? err
        : new Error(`${where}: ${describeError(err)}`)
    })
    tasks.push(tx)
  }
  return (await Promise.all(tasks)).reduce((a, b) => a + b, 0)
}

// A transaction whose callback returns an array of queries: postgres.js pipelines them all
// inside BEGIN ... COMMIT.
async function pipelinedTransaction(round) {
  const where = `round ${round} pipelined transaction`
  const results = await answer(where, sql.begin(tx => [
    tx`SELECT ${round}::int * 10 AS v`,
    tx`SELECT current_setting('transaction_isolation') AS iso, ${'p' + round}::text AS p`,
    tx`SELECT count(*)::int >= 0 AS ok FROM ${table}`,
  ]))
  check(where, results.map(rows), [
    [{ v: round * 10 }], [{ iso: 'read committed', p: `p${round}` }], [{ ok: true }],
  ])
}

// sql.batch: several queries in one round trip with a single Sync.
async function batch(round) {
  const where = `round ${round} batch`
  const results = await answer(where, sql.batch([
    sql`SELECT ${round}::int + 1 AS a`,
    sql`SELECT ${'b' + round}::text AS b, ${round}::int - 1 AS c`,
  ]))
  check(where, results.map(rows), [[{ a: round + 1 }], [{ b: `b${round}`, c: round - 1 }]])
}

// BURST concurrent queries on one reserved connection: all are written before any answer
// comes back (a pipeline on one client connection), then released to the pool.
async function reservedBurst(round) {
  const reserved = await answer(`round ${round} reserve`, sql.reserve())
  try {
    await Promise.all(Array.from({ length: BURST }, (_, k) => {
      const where = `round ${round} reserved burst ${k}`
      return answer(where, reserved`SELECT ${k}::int AS k, ${`burst ${round}`}::text AS t`)
        .then(r => check(where, rows(r), [{ k, t: `burst ${round}` }]))
    }))
  } finally {
    await reserved.release()
  }
}

async function main() {
  let committed = 0
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const [written] = await Promise.all([
        transactions(round), plainQueries(round), pipelinedTransaction(round), batch(round),
        reservedBurst(round),
      ])
      committed += written
    }
    const final = await answer('final check',
      sql`SELECT count(*)::int AS c, count(DISTINCT client)::int AS clients FROM ${table}`)
    check('rows committed in total', rows(final), [{ c: committed, clients: CLIENTS }])
    console.log(`OK postgresjs: ${CLIENTS} connections x ${ROUNDS} rounds, ${queries} queries, ` +
      `${committed} rows committed, ${backends.size} server backends`)
  } catch (err) {
    fail(describeError(err))
  }
  await sql.end({ timeout: 5 })
}

main()
