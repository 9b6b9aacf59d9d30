// Command demoload drives the write load of scripts/demo on the local stack's
// master and checks at the end that the replicas equal it.
//
//	go run ./internal/demoload reset
//	go run ./internal/demoload load --duration 60s
//	go run ./internal/demoload verify
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/internal/workload"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: demoload reset|load|verify [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	database := fs.String("database", "rowcast_demo", "database the demo writes")
	duration := fs.Duration("duration", time.Minute, "how long to write (load)")
	clients := fs.Int("clients", 4, "concurrent transfer clients (load)")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long replicas may take to converge (verify)")
	fs.Parse(os.Args[2:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch os.Args[1] {
	case "reset":
		err = reset(ctx, *database)
	case "load":
		err = load(ctx, *database, *duration, *clients)
	case "verify":
		err = verify(ctx, *database, *timeout)
	default:
		err = fmt.Errorf("unknown command %q: use reset, load or verify", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demoload:", err)
		os.Exit(1)
	}
}

func open(node string) (*sql.DB, error) {
	db, err := sql.Open("mysql", testenv.RootDSN(node, ""))
	if err != nil {
		return nil, err
	}
	return db, db.Ping()
}

func load(ctx context.Context, database string, d time.Duration, clients int) error {
	db, err := open(testenv.Master)
	if err != nil {
		return fmt.Errorf("master %s: %w (is the stack up? scripts/stack up)", testenv.Addr(testenv.Master), err)
	}
	defer db.Close()
	if err := createDemo(ctx, db, database); err != nil {
		return err
	}
	bank := &workload.Bank{DB: db, Database: database, Accounts: 1000, Initial: 1000}
	if err := bank.Setup(ctx); err != nil {
		return err
	}
	fmt.Printf("demo: %d accounts of %d in %s on %s; writing for %v with %d clients\n", bank.Accounts, bank.Initial, database, testenv.Master, d, clients)
	lctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- bank.Run(lctx, clients, 0) }()
	var orders int64
	go func() { errc <- writeOrders(lctx, db, database, &orders) }()
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			return err
		}
	}
	fmt.Printf("demo: %d transfers and %d orders committed on the master\n", bank.Transfers.Load(), orders)
	return nil
}

// reset drops the demo database on the master before the pipeline starts,
// so that its initial snapshot has nothing of an earlier run to copy; load
// creates it again through the pipeline.
func reset(ctx context.Context, database string) error {
	db, err := open(testenv.Master)
	if err != nil {
		return fmt.Errorf("master %s: %w (is the stack up? scripts/stack up)", testenv.Addr(testenv.Master), err)
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+database+"`")
	return err
}

// createDemo creates the demo database afresh, with its orders table.
func createDemo(ctx context.Context, db *sql.DB, database string) error {
	q := "`" + database + "`"
	for _, s := range []string{"DROP DATABASE IF EXISTS " + q, "CREATE DATABASE " + q,
		"CREATE TABLE " + q + ".orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, account INT NOT NULL, amount DECIMAL(12,2) NOT NULL, note VARCHAR(100), created DATETIME(6) NOT NULL)"} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// writeOrders inserts orders 20 at a time until ctx ends, counting them in
// orders.
func writeOrders(ctx context.Context, db *sql.DB, database string, orders *int64) error {
	for ctx.Err() == nil {
		if _, err := db.ExecContext(ctx, ordersSQL(database, *orders)); err != nil && ctx.Err() == nil {
			return err
		}
		*orders += 20
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// ordersSQL inserts 20 orders, numbered from n.
func ordersSQL(database string, n int64) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO `" + database + "`.orders (account, amount, note, created) VALUES ")
	for i := 0; i < 20; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "(%d, %d.%02d, 'demo order', NOW(6))", (n+int64(i))%1000, i*7, i)
	}
	return sb.String()
}

func verify(ctx context.Context, database string, timeout time.Duration) error {
	master, err := open(testenv.Master)
	if err != nil {
		return err
	}
	defer master.Close()
	want, err := workload.Checksum(ctx, master, database)
	if err != nil {
		return err
	}
	sum, n, err := workload.Total(ctx, master, database)
	if err != nil {
		return err
	}
	fmt.Printf("master %s: %d accounts holding %d\n", testenv.Master, n, sum)
	equal, err := compareReplicas(ctx, database, want, timeout)
	if err != nil {
		return err
	}
	if !equal {
		return fmt.Errorf("replicas differ from the master")
	}
	fmt.Println("demo: both replicas equal the master")
	return nil
}

// compareReplicas waits for each replica to converge to want and prints how
// it compares.
func compareReplicas(ctx context.Context, database string, want []workload.TableChecksum, timeout time.Duration) (equal bool, err error) {
	equal = true
	for _, node := range []string{testenv.Replica1, testenv.Replica2} {
		diff, err := converge(ctx, node, database, want, timeout)
		if err != nil {
			return false, err
		}
		equal = printReplica(node, diff, want) && equal
	}
	return equal, nil
}

// printReplica prints how a replica compares with the master; true when it
// equals it.
func printReplica(node, diff string, want []workload.TableChecksum) bool {
	if diff != "" {
		fmt.Printf("replica %s DIFFERS from the master: %s\n", node, diff)
		return false
	}
	for _, c := range want {
		fmt.Printf("replica %s = master: %-10s %8d rows  checksum %s\n", node, c.Table, c.Rows, c.Hash)
	}
	return true
}

// converge waits up to timeout for node's copy of the database to equal
// want, and returns how it still differs ("" when it does not).
func converge(ctx context.Context, node, database string, want []workload.TableChecksum, timeout time.Duration) (string, error) {
	db, err := open(node)
	if err != nil {
		return "", err
	}
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		diff := ""
		if got, err := workload.Checksum(ctx, db, database); err == nil {
			diff = workload.Diff(want, got)
		} else {
			diff = err.Error()
		}
		if diff == "" || time.Now().After(deadline) {
			return diff, nil
		}
		time.Sleep(time.Second)
	}
}
