package config

import (
	"slices"

	"github.com/rowcast/rowcast/internal/grants"
)

// The privileges of each of rowcast's jobs, in MariaDB's names
// (docs/SECURITY.md, Accounts, gives MySQL's).

// Data privileges a sink needs on every replicated database, and those
// that replaying DDL of other objects may use.
var (
	sinkNeeds  = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX"}
	sinkMayUse = []string{"REFERENCES", "CREATE TEMPORARY TABLES", "LOCK TABLES", "SHOW VIEW", "TRIGGER", "CREATE VIEW",
		"CREATE ROUTINE", "ALTER ROUTINE", "EVENT", "EXECUTE", "DELETE HISTORY"}
	bookkeepingPrivs = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "INDEX"}
)

// job is what the job name needs on a node whose replicated databases are
// dbs.
func (c *Config) job(name, node string, dbs []string) grants.Job {
	switch name {
	case "reader":
		return c.readerJob(dbs)
	case "sink":
		return c.sinkJob(node, dbs)
	}
	return c.adminJob()
}

// readerJob: stream the binlog, list the binlogs, read the replicated
// tables (snapshots, column types).
func (c *Config) readerJob(dbs []string) grants.Job {
	book := c.Sink.BookkeepingSchema
	j := grants.Job{Name: "reader", DBs: append([]string{book}, dbs...), DBPrivs: []string{"SELECT", "SHOW VIEW", "INSERT", "UPDATE", "CREATE"},
		Global: []string{"REPLICATION SLAVE", "BINLOG MONITOR", "REPLICATION CLIENT", "REPLICATION MASTER ADMIN", "RELOAD", "SELECT", "SHOW VIEW"},
		Needs: []grants.Need{
			{Priv: "REPLICATION SLAVE", DB: "*", Why: "stream the binlog"},
			{Priv: "BINLOG MONITOR", DB: "*", Why: "list the binlogs, check the resume position"},
		}}
	for _, db := range dbs {
		j.Needs = append(j.Needs, grants.Need{Priv: "SELECT", DB: db, Why: "snapshots and column types of the replicated tables"})
	}
	for _, p := range []string{"SELECT", "INSERT", "UPDATE", "CREATE"} {
		j.Needs = append(j.Needs, grants.Need{Priv: p, DB: book, Why: "snapshot requests, in the bookkeeping schema's snapshots table"})
	}
	return j
}

// sinkJob: apply rows and DDL to the replicated databases, keep the
// checkpoint in the bookkeeping schema, hold replicas read-only; on a master
// of a master-master set, apply the others' transactions under their GTIDs.
func (c *Config) sinkJob(node string, dbs []string) grants.Job {
	book := c.Sink.BookkeepingSchema
	j := grants.Job{Name: "sink", DBs: append([]string{book}, dbs...), DBPrivs: append(sinkNeeds, sinkMayUse...),
		Global: append([]string{"READ_ONLY ADMIN", "BINLOG REPLAY", "SLAVE MONITOR"}, append(sinkNeeds, sinkMayUse...)...)}
	for _, db := range dbs {
		for _, p := range sinkNeeds {
			j.Needs = append(j.Needs, grants.Need{Priv: p, DB: db, Why: "apply row changes and DDL"})
		}
	}
	for _, p := range bookkeepingPrivs[:5] {
		j.Needs = append(j.Needs, grants.Need{Priv: p, DB: book, Why: "the checkpoint, in the bookkeeping schema"})
	}
	for _, p := range []string{"CREATE ROUTINE", "ALTER ROUTINE"} {
		j.Needs = append(j.Needs, grants.Need{Priv: p, DB: book, Why: "install the wait_for procedure of read-your-writes"})
	}
	if c.MasterMaster() && c.IsMaster(node) {
		j.Global = append(j.Global, "BINLOG ADMIN")
		j.Needs = append(j.Needs,
			grants.Need{Priv: "BINLOG REPLAY", DB: "*", Why: "master-master: apply the other masters' transactions under their GTIDs (SET SESSION gtid_domain_id, server_id, gtid_seq_no)"},
			grants.Need{Priv: "BINLOG ADMIN", DB: "*", Why: "master-master: keep checkpoint-only commits out of the binlog (SET SESSION sql_log_bin)"})
		if c.Versioned() {
			for _, db := range dbs {
				j.Needs = append(j.Needs, grants.Need{Priv: "TRIGGER", DB: db, Why: "master-master conflicts: the unit installs the row version triggers"})
			}
		}
		return j // masters are never protected
	}
	if c.Sink.ProtectReplicas == nil || *c.Sink.ProtectReplicas {
		j.Needs = append(j.Needs, grants.Need{Priv: "READ_ONLY ADMIN", DB: "*", Why: "sink.protect_replicas: write through read_only and set it"})
	}
	return j
}

// adminJob: fence the master (read_only, kill its writers; PROCESS lets it
// see their open transactions first), make the new master writable, write
// the epoch index and the lease.
func (c *Config) adminJob() grants.Job {
	book := c.Sink.BookkeepingSchema
	j := grants.Job{Name: "admin", DBs: []string{book}, DBPrivs: bookkeepingPrivs,
		Global: []string{"READ_ONLY ADMIN", "CONNECTION ADMIN", "PROCESS", "SLAVE MONITOR", "BINLOG MONITOR", "REPLICATION CLIENT"},
		Needs: []grants.Need{
			{Priv: "READ_ONLY ADMIN", DB: "*", Why: "fence the master and make the new one writable (SET GLOBAL read_only)"},
			{Priv: "CONNECTION ADMIN", DB: "*", Why: "kill the old master's writers"},
		}}
	for _, p := range bookkeepingPrivs[:5] {
		j.Needs = append(j.Needs, grants.Need{Priv: p, DB: book, Why: "the epoch index and the promotion lease"})
	}
	return j
}

// mysqlNames are MySQL 8's privileges for MariaDB's: none for one MySQL
// lacks; on MySQL, CONNECTION_ADMIN is what writes through read_only.
var mysqlNames = map[string][]string{
	"READ_ONLY ADMIN":  {"SYSTEM_VARIABLES_ADMIN", "CONNECTION_ADMIN"},
	"CONNECTION ADMIN": {"CONNECTION_ADMIN"},
	"BINLOG MONITOR":   {"REPLICATION CLIENT"},
	"SLAVE MONITOR":    {"REPLICATION CLIENT"},
	"BINLOG REPLAY":    nil,
}

func mysqlPrivs(p string) []string {
	if m, ok := mysqlNames[p]; ok {
		return m
	}
	return []string{p}
}

// mysqlJob is job in MySQL's names.
func mysqlJob(job grants.Job) grants.Job {
	var needs []grants.Need
	for _, n := range job.Needs {
		for _, p := range mysqlPrivs(n.Priv) {
			m := grants.Need{Priv: p, DB: n.DB, Why: n.Why}
			if !slices.ContainsFunc(needs, func(o grants.Need) bool { return o.Priv == m.Priv && o.DB == m.DB }) {
				needs = append(needs, m)
			}
		}
	}
	var global []string
	for _, p := range job.Global {
		global = append(global, mysqlPrivs(p)...)
	}
	job.Needs, job.Global = needs, global
	return job
}
