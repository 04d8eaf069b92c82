// pgxclient drives pgx v4 (github.com/jackc/pgx/v4) through a PostgreSQL proxy from many
// connections at once, checks every answer, and prints one JSON summary line.
//
// Usage:
//
//	pgxclient -dsn 'postgres://app:app@127.0.0.1:6432/app?statement_cache_mode=describe' \
//	    -conns 12 -rounds 30 -table pgx_rounds -plan-cache-mode auto
//
// pgx v4 reads statement_cache_mode (prepare: named server-side statements, its default;
// describe: the unnamed statement only) from the connection string, and sends every key it
// does not know, such as plan_cache_mode, to the server as a startup parameter.
//
// Each connection is its own pgx.Conn (no pgxpool) in its own goroutine; each round runs
// parameterised queries with several result types, a write in an explicit transaction and
// a pipelined batch (SendBatch). Every query also returns current_setting('plan_cache_mode'),
// checked against -plan-cache-mode when it is given, and pg_backend_pid(), so the summary
// tells how many server connections served the clients and how many clients moved between
// them. The table named by -table must exist: (client int, round int, source text,
// plan_cache_mode text). Any error or wrong answer: a message on stderr, exit status 1.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v4"
)

// The statements every round runs; each also reports the server's plan_cache_mode.
const (
	qSum    = "SELECT $1::int + $2::int, current_setting('plan_cache_mode'), pg_backend_pid()"
	qText   = "SELECT $1::text || 'x', current_setting('plan_cache_mode')"
	qTypes  = "SELECT $1::int8 * 2, NOT $2::bool, $3::float8 / 2, $4::bytea, $5::text[], NULLIF($1::int8, $1::int8), current_setting('plan_cache_mode')"
	qSeries = "SELECT g, 'row ' || g::text, current_setting('plan_cache_mode') FROM generate_series(1, $1::int) AS g"
	qMode   = "SELECT current_setting('plan_cache_mode')"
)

type config struct {
	dsn           string
	conns         int
	rounds        int
	table         string
	planCacheMode string // "" = not checked
}

// stats is what one connection saw.
type stats struct {
	checks  int // answers (rows) checked
	inserts int
	pids    map[int32]bool
}

// worker is one client connection and its checks.
type worker struct {
	cfg   config
	id    int
	conn  *pgx.Conn
	stats stats
}

func (w *worker) fail(round int, what string, format string, args ...interface{}) error {
	return fmt.Errorf("conn %d round %d: %s: %s", w.id, round, what, fmt.Sprintf(format, args...))
}

// checkMode compares a reported plan_cache_mode with the expected one.
func (w *worker) checkMode(round int, what, got string) error {
	w.stats.checks++
	if w.cfg.planCacheMode != "" && got != w.cfg.planCacheMode {
		return w.fail(round, what, "plan_cache_mode is %q, want %q", got, w.cfg.planCacheMode)
	}
	return nil
}

func (w *worker) run(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, w.cfg.dsn)
	if err != nil {
		return fmt.Errorf("conn %d: connect: %w", w.id, err)
	}
	w.conn = conn
	defer conn.Close(context.Background())
	for round := 0; round < w.cfg.rounds; round++ {
		steps := []func(context.Context, int) error{w.scalars, w.series, w.transaction, w.batch}
		for _, step := range steps {
			if err := step(ctx, round); err != nil {
				return err
			}
		}
	}
	return nil
}

// scalars: one row of int, text and several other types, checked value by value.
func (w *worker) scalars(ctx context.Context, round int) error {
	var sum int32
	var pid int32
	var mode string
	if err := w.conn.QueryRow(ctx, qSum, round, w.id).Scan(&sum, &mode, &pid); err != nil {
		return w.fail(round, qSum, "%v", err)
	}
	if sum != int32(round+w.id) {
		return w.fail(round, qSum, "got %d, want %d", sum, round+w.id)
	}
	w.stats.pids[pid] = true
	if err := w.checkMode(round, qSum, mode); err != nil {
		return err
	}

	var s string
	arg := fmt.Sprintf("c%d-r%d", w.id, round)
	if err := w.conn.QueryRow(ctx, qText, arg).Scan(&s, &mode); err != nil {
		return w.fail(round, qText, "%v", err)
	}
	if s != arg+"x" {
		return w.fail(round, qText, "got %q, want %q", s, arg+"x")
	}
	if err := w.checkMode(round, qText, mode); err != nil {
		return err
	}

	var (
		i8    int64
		b     bool
		f     float64
		raw   []byte
		arr   []string
		null  *int64
		wantB = []byte{0, byte(round), byte(w.id), 0xff}
		wantA = []string{arg, "two words", ""}
	)
	err := w.conn.QueryRow(ctx, qTypes, int64(round)<<33, round%2 == 0, float64(w.id)+0.5,
		wantB, wantA).Scan(&i8, &b, &f, &raw, &arr, &null, &mode)
	if err != nil {
		return w.fail(round, qTypes, "%v", err)
	}
	if i8 != int64(round)<<34 || b != (round%2 != 0) || f != (float64(w.id)+0.5)/2 ||
		!bytes.Equal(raw, wantB) || !reflect.DeepEqual(arr, wantA) || null != nil {
		return w.fail(round, qTypes, "got %v %v %v %v %q %v", i8, b, f, raw, arr, null)
	}
	return w.checkMode(round, qTypes, mode)
}

// series: a query returning several rows.
func (w *worker) series(ctx context.Context, round int) error {
	n := 1 + (round+w.id)%7
	rows, err := w.conn.Query(ctx, qSeries, n)
	if err != nil {
		return w.fail(round, qSeries, "%v", err)
	}
	defer rows.Close()
	got := 0
	for rows.Next() {
		var g int32
		var label, mode string
		if err := rows.Scan(&g, &label, &mode); err != nil {
			return w.fail(round, qSeries, "%v", err)
		}
		got++
		if int(g) != got || label != fmt.Sprintf("row %d", got) {
			return w.fail(round, qSeries, "row %d is (%d, %q)", got, g, label)
		}
		if err := w.checkMode(round, qSeries, mode); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return w.fail(round, qSeries, "%v", err)
	}
	if got != n {
		return w.fail(round, qSeries, "%d rows, want %d", got, n)
	}
	return nil
}

// transaction: BEGIN; INSERT ... RETURNING; a read inside the transaction; COMMIT.
func (w *worker) transaction(ctx context.Context, round int) error {
	insert := fmt.Sprintf("INSERT INTO %s (client, round, source, plan_cache_mode) "+
		"VALUES ($1, $2, 'tx', current_setting('plan_cache_mode')) RETURNING round", w.cfg.table)
	tx, err := w.conn.Begin(ctx)
	if err != nil {
		return w.fail(round, "BEGIN", "%v", err)
	}
	defer tx.Rollback(context.Background()) // a no-op once committed
	var back int32
	if err := tx.QueryRow(ctx, insert, w.id, round).Scan(&back); err != nil {
		return w.fail(round, insert, "%v", err)
	}
	if back != int32(round) {
		return w.fail(round, insert, "RETURNING %d, want %d", back, round)
	}
	w.stats.inserts++
	var mode string
	if err := tx.QueryRow(ctx, qMode).Scan(&mode); err != nil {
		return w.fail(round, qMode+" in a transaction", "%v", err)
	}
	if err := w.checkMode(round, qMode+" in a transaction", mode); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return w.fail(round, "COMMIT", "%v", err)
	}
	return nil
}

// batch: SendBatch pipelines Bind/Execute for several queries behind one Sync (one implicit
// transaction on one server), including a write.
func (w *worker) batch(ctx context.Context, round int) error {
	insert := fmt.Sprintf("INSERT INTO %s (client, round, source, plan_cache_mode) "+
		"VALUES ($1, $2, 'batch', current_setting('plan_cache_mode'))", w.cfg.table)
	b := &pgx.Batch{}
	b.Queue(qSum, w.id, 1000)
	b.Queue(qText, "batch")
	b.Queue(insert, w.id, round)
	b.Queue(qMode)
	br := w.conn.SendBatch(ctx, b)
	defer br.Close()

	var sum int32
	var pid int32
	var s, mode string
	if err := br.QueryRow().Scan(&sum, &mode, &pid); err != nil {
		return w.fail(round, "batch: "+qSum, "%v", err)
	}
	if sum != int32(w.id+1000) {
		return w.fail(round, "batch: "+qSum, "got %d, want %d", sum, w.id+1000)
	}
	w.stats.pids[pid] = true
	if err := w.checkMode(round, "batch: "+qSum, mode); err != nil {
		return err
	}
	if err := br.QueryRow().Scan(&s, &mode); err != nil {
		return w.fail(round, "batch: "+qText, "%v", err)
	}
	if s != "batchx" {
		return w.fail(round, "batch: "+qText, "got %q", s)
	}
	if err := w.checkMode(round, "batch: "+qText, mode); err != nil {
		return err
	}
	tag, err := br.Exec()
	if err != nil {
		return w.fail(round, "batch: "+insert, "%v", err)
	}
	if tag.RowsAffected() != 1 {
		return w.fail(round, "batch: "+insert, "command tag %q", tag.String())
	}
	w.stats.inserts++
	if err := br.QueryRow().Scan(&mode); err != nil {
		return w.fail(round, "batch: "+qMode, "%v", err)
	}
	if err := w.checkMode(round, "batch: "+qMode, mode); err != nil {
		return err
	}
	if err := br.Close(); err != nil {
		return w.fail(round, "batch close", "%v", err)
	}
	return nil
}

// summary is the JSON line printed on success.
type summary struct {
	Conns          int     `json:"conns"`
	Rounds         int     `json:"rounds"`
	Checks         int     `json:"checks"` // rows checked
	Inserts        int     `json:"inserts"`
	BackendPids    []int32 `json:"backend_pids"`
	ClientsMoved   int     `json:"clients_moved"` // clients served by more than one backend
	ElapsedSeconds float64 `json:"elapsed_s"`
}

func main() {
	var cfg config
	timeout := flag.Duration("timeout", 120*time.Second, "give up (and fail) after this long")
	flag.StringVar(&cfg.dsn, "dsn", "", "pgx connection string (URL or key=value)")
	flag.IntVar(&cfg.conns, "conns", 12, "concurrent connections")
	flag.IntVar(&cfg.rounds, "rounds", 30, "rounds per connection")
	flag.StringVar(&cfg.table, "table", "pgx_rounds", "existing table the writes go to")
	flag.StringVar(&cfg.planCacheMode, "plan-cache-mode", "",
		"expected current_setting('plan_cache_mode') on every query (empty: not checked)")
	flag.Parse()
	if cfg.dsn == "" || cfg.conns < 1 || cfg.rounds < 1 {
		fmt.Fprintln(os.Stderr, "pgxclient: -dsn, -conns >= 1 and -rounds >= 1 are required")
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	start := time.Now()
	workers := make([]*worker, cfg.conns)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error // the first failure; errors it causes in the others (cancel) add noise
	)
	for i := range workers {
		workers[i] = &worker{cfg: cfg, id: i, stats: stats{pids: map[int32]bool{}}}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := workers[i].run(ctx); err != nil {
				once.Do(func() { firstErr = err; cancel() })
			}
		}(i)
	}
	wg.Wait()

	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "pgxclient: %v\n", firstErr)
		os.Exit(1)
	}

	out := summary{Conns: cfg.conns, Rounds: cfg.rounds}
	pids := map[int32]bool{}
	for _, w := range workers {
		out.Checks += w.stats.checks
		out.Inserts += w.stats.inserts
		if len(w.stats.pids) > 1 {
			out.ClientsMoved++
		}
		for pid := range w.stats.pids {
			pids[pid] = true
		}
	}
	for pid := range pids {
		out.BackendPids = append(out.BackendPids, pid)
	}
	sort.Slice(out.BackendPids, func(i, j int) bool { return out.BackendPids[i] < out.BackendPids[j] })
	out.ElapsedSeconds = time.Since(start).Seconds()
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}
