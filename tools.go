//go:build tools

// Package tools pins the modules rowcast is built on until code imports each of them.
package tools

import (
	_ "github.com/ClickHouse/ch-go/proto"
	_ "github.com/go-mysql-org/go-mysql/replication"
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/rs/zerolog"
	_ "github.com/segmentio/kafka-go"
	_ "go.uber.org/goleak"
	_ "golang.org/x/sync/errgroup"
	_ "gopkg.in/yaml.v3"
)
