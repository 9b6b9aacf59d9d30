// Command demoload drives the write load of scripts/demo on the local stack's
// master and checks at the end that the replicas equal it.
//
//	go run ./scripts/demoload load --duration 60s
//	go run ./scripts/demoload verify
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

	"github.com/rowcast/rowcast/pipeline/testenv"
	"github.com/rowcast/rowcast/pipeline/workload"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: demoload load|verify [flags]")
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
	case "load":
		err = load(ctx, *database, *duration, *clients)
	case "verify":
		err = verify(ctx, *database, *timeout)
	default:
		err = fmt.Errorf("unknown command %q: use load or verify", os.Args[1])
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
	q := "`" + database + "`"
	for _, s := range []string{"DROP DATABASE IF EXISTS " + q, "CREATE DATABASE " + q,
		"CREATE TABLE " + q + ".orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, account INT NOT NULL, amount DECIMAL(12,2) NOT NULL, note VARCHAR(100), created DATETIME(6) NOT NULL)"} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
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
	go func() {
		for lctx.Err() == nil {
			var sb strings.Builder
			sb.WriteString("INSERT INTO " + q + ".orders (account, amount, note, created) VALUES ")
			for i := 0; i < 20; i++ {
				if i > 0 {
					sb.WriteByte(',')
				}
				fmt.Fprintf(&sb, "(%d, %d.%02d, 'demo order', NOW(6))", (orders+int64(i))%1000, i*7, i)
			}
			if _, err := db.ExecContext(lctx, sb.String()); err != nil && lctx.Err() == nil {
				errc <- err
				return
			}
			orders += 20
			time.Sleep(20 * time.Millisecond)
		}
		errc <- nil
	}()
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			return err
		}
	}
	fmt.Printf("demo: %d transfers and %d orders committed on the master\n", bank.Transfers.Load(), orders)
	return nil
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
	failed := false
	for _, node := range []string{testenv.Replica1, testenv.Replica2} {
		db, err := open(node)
		if err != nil {
			return err
		}
		deadline := time.Now().Add(timeout)
		var diff string
		for {
			got, err := workload.Checksum(ctx, db, database)
			if err == nil {
				diff = workload.Diff(want, got)
			} else {
				diff = err.Error()
			}
			if diff == "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		db.Close()
		if diff != "" {
			failed = true
			fmt.Printf("replica %s DIFFERS from the master: %s\n", node, diff)
			continue
		}
		for _, c := range want {
			fmt.Printf("replica %s = master: %-10s %8d rows  checksum %s\n", node, c.Table, c.Rows, c.Hash)
		}
	}
	if failed {
		return fmt.Errorf("replicas differ from the master")
	}
	fmt.Println("demo: both replicas equal the master")
	return nil
}
