package faults_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/faults"
)

// An Injector wraps any driver; here sqlmock. The plan fails the first
// commit with a serialization failure, as Postgres would report it.
func ExampleInjector() {
	raw, mock, err := sqlmock.NewWithDSN("example-injector")
	if err != nil {
		panic(err)
	}
	defer raw.Close()
	mock.ExpectBegin()
	mock.ExpectExec("UPDATE items").WillReturnResult(sqlmock.NewResult(0, 1))

	inj := faults.NewInjector()
	inj.Arm(faults.MustParsePlan("match=commit#1:pgerr=40001"))
	connector, err := inj.WrapDriver(raw.Driver()).(driver.DriverContext).OpenConnector("example-injector")
	if err != nil {
		panic(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	tx, err := db.Begin()
	if err != nil {
		panic(err)
	}
	if _, err := tx.Exec("UPDATE items SET n = n + 1 WHERE id = $1", 7); err != nil {
		panic(err)
	}
	err = tx.Commit()

	var pgErr *pgconn.PgError
	fmt.Println(errors.As(err, &pgErr), pgErr.Code)
	fmt.Print(inj.Trace())
	for _, f := range inj.Fired() {
		fmt.Println(f.Rule)
	}
	// Output:
	// true 40001
	//   1 connect    conn=1
	//   2 begin      conn=1
	//   3 exec       conn=1 UPDATE items SET n = n + ? WHERE id = $1 args=1 -> 1 affected
	//   4 commit     conn=1 ! pgerr=40001 err: ERROR: could not serialize access due to concurrent update (injected) (SQLSTATE 40001)
	// match=commit#1:pgerr=40001
}

func ExampleParsePlan() {
	p, err := faults.ParsePlan("step=7:pgerr=40001, match=exec~UPDATE threads#2:badconn")
	if err != nil {
		panic(err)
	}
	for _, r := range p.Rules {
		fmt.Printf("%s -> step %d, match %q #%d, fault %s\n", r, r.Step, r.Pattern, r.Nth, r.Fault)
	}
	fmt.Println(p)

	_, err = faults.ParsePlan("step=7:pgerr=4001")
	fmt.Println(err)
	// Output:
	// step=7:pgerr=40001 -> step 7, match "" #0, fault pgerr=40001
	// match=exec~UPDATE threads#2:badconn -> step 0, match "UPDATE threads" #2, fault badconn
	// step=7:pgerr=40001,match=exec~UPDATE threads#2:badconn
	// parse plan "step=7:pgerr=4001": at offset 13: expected a five-character SQLSTATE such as 40001, found "4001": faults: plan syntax
}

func ExampleRandomPlan() {
	trace := faults.Trace{
		{Index: 1, Kind: faults.StepConnect},
		{Index: 2, Kind: faults.StepBegin},
		{Index: 3, Kind: faults.StepExec, SQL: "UPDATE items SET n = 1"},
		{Index: 4, Kind: faults.StepCommit},
	}
	rates := faults.Rates{
		Backend: faults.Postgres,
		Kinds:   map[faults.Kind]float64{faults.KindPgErr: 0.5, faults.KindAmbiguous: 0.5},
		Max:     2,
	}
	const seed = 7
	fmt.Println("seed", seed, "plan", faults.RandomPlan(seed, trace, rates))
	//lint:ignore SA4000 two calls, not one expression twice: the example shows RandomPlan is deterministic
	fmt.Println("same seed, same plan:", faults.RandomPlan(seed, trace, rates).String() == faults.RandomPlan(seed, trace, rates).String())
	// Output:
	// seed 7 plan step=4:pgerr=40001
	// same seed, same plan: true
}

func ExampleFingerprint() {
	fmt.Println(faults.Fingerprint("SELECT id\n  FROM threads WHERE user_id = $1 AND title = 'x' LIMIT 20"))
	// Output:
	// SELECT id FROM threads WHERE user_id = $1 AND title = ? LIMIT ?
}

// On real Postgres, the injector fails a step through the wire (cut,
// cut-after, ambiguous) or the server (terminate, lock, stmt-timeout). Here
// the first COMMIT reaches the server and commits, but the client sees the
// connection die: the ambiguous commit. (Not run: it needs a server.)
func ExampleWithWire() {
	ctx := context.Background()
	cfg, err := pgx.ParseConfig("postgres://app@localhost/app?application_name=app-under-test")
	if err != nil {
		panic(err)
	}
	wire := faults.NewWire()
	wire.Install(&cfg.Config) // under every connection the connector opens

	admin, err := sql.Open("pgx", "postgres://postgres@localhost/postgres")
	if err != nil {
		panic(err)
	}
	defer admin.Close()
	server := faults.NewServer(admin)

	inj := faults.NewInjector(faults.WithWire(wire), faults.WithServer(server, "app-under-test"))
	db := sql.OpenDB(inj.WrapConnector(stdlib.GetConnector(*cfg)))
	defer db.Close()

	inj.Arm(faults.MustParsePlan("match=commit#1:ambiguous"))
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		panic(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO items (id) VALUES (1)"); err != nil {
		panic(err)
	}
	fmt.Println("commit:", tx.Commit()) // an error, yet the row is there
	fmt.Println(inj.Fired())
}
