// node-postgres (`pg`) with NAMED prepared statements through pgcat-py.
//
// Opens N `pg.Client`s (one client connection each) and runs ROUNDS rounds in which every
// client, concurrently with the others, runs parameterised queries through named statements:
// `pg` sends Parse only the first time a client uses a name and afterwards just Bind/Execute,
// so in transaction mode with fewer servers than clients the proxy must make each statement
// exist on whichever server the client gets next. Each round also writes in an explicit
// transaction (BEGIN / INSERT / SELECT / COMMIT, every 5th round a ROLLBACK instead).
// Every answer is checked; the first error or wrong answer ends the script with exit code 1
// and a line saying which client, round and statement failed, with the SQLSTATE.
//
// Usage: node pg_named.js --host=127.0.0.1 --port=6432 --clients=12 --rounds=30 --table=t
// (or PROXY_HOST, PROXY_PORT, CLIENTS, ROUNDS, TABLE). The table must exist:
//   CREATE TABLE t (id serial PRIMARY KEY, client int NOT NULL, round int NOT NULL, note text)
'use strict'

const pg = require('pg')

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
const TABLE = option('table', 'TABLE', 'node_pg_named')
const DEADLINE_S = Number(option('deadline', 'DEADLINE_S', '150'))
if (!/^[a-z_][a-z0-9_]*$/.test(TABLE)) fail(`bad table name ${JSON.stringify(TABLE)}`)

let queries = 0
const backends = Array.from({ length: CLIENTS }, () => new Set()) // server pids per client

function fail(message) {
  console.error(`FAIL pg_named: ${message}`)
  process.exit(1)
}

function describeError(err) {
  // A server error has a 5-character SQLSTATE; a driver or socket error a name of its own.
  const code = !err || !err.code ? ''
    : /^[0-9A-Z]{5}$/.test(err.code) ? ` (SQLSTATE ${err.code})` : ` (${err.code})`
  return `${err && err.message ? err.message : String(err)}${code}`
}

function check(what, actual, expected) {
  const a = JSON.stringify(actual)
  const e = JSON.stringify(expected)
  if (a !== e) throw new Error(`wrong answer for ${what}: got ${a}, expected ${e}`)
}

// A hang (a lost reply) must fail the test with a message rather than wait for pytest.
setTimeout(() => fail(`not done after ${DEADLINE_S} s (${queries} queries answered)`),
  DEADLINE_S * 1000).unref()

// One query; on error, say which statement it was and re-throw with the context.
async function run(client, where, config) {
  try {
    const result = await client.query(config)
    queries += 1
    return result
  } catch (err) {
    const name = config.name ? `named statement '${config.name}'` : 'text query'
    const wrapped = new Error(`${where}, ${name} [${config.text}]: ${describeError(err)}`)
    throw wrapped
  }
}

// The statements. `pg` keys its per-connection cache by name, so each name keeps one text.
const ADD = { name: 'add', text: 'SELECT $1::int + $2::int AS v' }
const SERIES = {
  name: 'series',
  text: "SELECT g AS n, 'row ' || g || $2::text AS label FROM generate_series(1, $1::int) AS g",
}
const TYPES = {
  name: 'types',
  text: 'SELECT upper($1::text) AS s, $2::numeric * 2 AS d, $3::boolean AS b, ' +
    '$4::jsonb AS j, $5::bigint * 1000000 AS big, NULL::int AS z, ARRAY[$6::int, 7] AS arr',
}
const INSERT = {
  name: 'insert',
  text: `INSERT INTO ${TABLE} (client, round, note) VALUES ($1, $2, $3) RETURNING client, round`,
}
const COUNT_MINE = {
  name: 'count_mine', text: `SELECT count(*)::int AS c FROM ${TABLE} WHERE client = $1`,
}

async function oneRound(client, index, round, committed) {
  const where = `client ${index} round ${round}`

  let r = await run(client, where, { ...ADD, values: [round, index] })
  check(`${where} add`, r.rows, [{ v: round + index }])

  const count = (round + index) % 5 + 1
  r = await run(client, where, { ...SERIES, values: [count, `/${index}`] })
  check(`${where} series`, r.rows,
    Array.from({ length: count }, (_, k) => ({ n: k + 1, label: `row ${k + 1}/${index}` })))

  r = await run(client, where, {
    ...TYPES, values: [`c${index}r${round}`, `${round}.25`, round % 2 === 0,
      JSON.stringify({ c: index, r: round }), String(index + 1), round],
  })
  check(`${where} types`, r.rows, [{
    s: `C${index}R${round}`, d: `${2 * round}.50`, b: round % 2 === 0,
    j: { c: index, r: round }, big: String((index + 1) * 1000000), z: null, arr: [round, 7],
  }])

  // A plain text query (simple protocol when there are no values) between named ones; it
  // also tells which server backend this client has now.
  r = await run(client, where,
    { text: `SELECT ${index} AS i, 'r${round}' AS t, pg_backend_pid() AS pid` })
  check(`${where} text query`, r.rows.map(({ i, t }) => ({ i, t })),
    [{ i: index, t: `r${round}` }])
  backends[index].add(r.rows[0].pid)

  // A write in an explicit transaction; every 5th round is rolled back.
  const rollback = round % 5 === 4
  await run(client, where, { text: 'BEGIN' })
  r = await run(client, where, { ...INSERT, values: [index, round, `pg ${index}/${round}`] })
  check(`${where} insert`, r.rows, [{ client: index, round }])
  r = await run(client, where, { ...COUNT_MINE, values: [index] })
  check(`${where} count inside the transaction`, r.rows, [{ c: committed + 1 }])
  await run(client, where, { text: rollback ? 'ROLLBACK' : 'COMMIT' })
  const after = rollback ? committed : committed + 1
  r = await run(client, where, { ...COUNT_MINE, values: [index] })
  check(`${where} count after ${rollback ? 'ROLLBACK' : 'COMMIT'}`, r.rows, [{ c: after }])
  return after
}

async function worker(client, index) {
  let committed = 0
  for (let round = 0; round < ROUNDS; round++) {
    committed = await oneRound(client, index, round, committed)
    if (round % 3 === 2) await new Promise(resolve => setImmediate(resolve))
  }
  return committed
}

async function main() {
  const clients = []
  try {
    for (let i = 0; i < CLIENTS; i++) {
      const client = new pg.Client({
        host: HOST, port: PORT, user: 'app', password: 'app', database: 'app',
        connectionTimeoutMillis: 30000, application_name: `pg_named_${i}`,
      })
      // An error on an idle connection would otherwise crash the process without context.
      client.on('error', err => fail(`client ${i} connection error: ${describeError(err)}`))
      try {
        await client.connect()
      } catch (err) {
        fail(`client ${i} could not connect to ${HOST}:${PORT}: ${describeError(err)}`)
      }
      clients.push(client)
    }
    const committed = await Promise.all(clients.map((client, i) => worker(client, i)))

    const total = committed.reduce((a, b) => a + b, 0)
    const r = await run(clients[0], 'final check', {
      text: `SELECT count(*)::int AS c, count(DISTINCT client)::int AS clients FROM ${TABLE}`,
    })
    check('rows committed in total', r.rows, [{ c: total, clients: CLIENTS }])
    // Server connections must really have rotated between clients, or the test proves little.
    const all = new Set(backends.flatMap(set => [...set]))
    const rotated = backends.filter(set => set.size > 1).length
    if (CLIENTS > all.size && rotated === 0) fail('no client ever changed server backend')
    console.log(`OK pg_named: ${CLIENTS} clients x ${ROUNDS} rounds, ${queries} queries, ` +
      `${total} rows committed, ${all.size} server backends, ${rotated} clients changed backend`)
  } catch (err) {
    fail(describeError(err))
  } finally {
    await Promise.allSettled(clients.map(client => client.end()))
  }
}

main()
