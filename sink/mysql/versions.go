package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rowcast/rowcast/pipeline"
)

// Row versions, on a master of a master-master set whose tables resolve
// conflicts by version (docs/MASTER-MASTER.md, "Conflicts"). Triggers on
// every master (service/versions.go) record, in the bookkeeping schema's
// row_versions table and in the same transaction, each local write's
// version: a level (raised only by the priority node's writes), the write's
// time in microseconds, at least one more than the version it replaces, and
// the node's GTID domain. Their rows follow each data row in the binlog,
// so the origin's topic carries them right after the row they version.
// Here a data row waits for its versions; the row, and its versions, apply
// only when they are newer than this master's version of the key. Every
// master keeps the newest version of each key, whatever the order the
// changes arrive in: they converge.

// VersionsTable is the name of the versions table in the bookkeeping schema.
const VersionsTable = "row_versions"

// VersionsTableDDL creates the versions table in schema.
func VersionsTableDDL(schema string) string {
	return "CREATE TABLE IF NOT EXISTS " + quoteIdent(schema) + "." + quoteIdent(VersionsTable) + " (" +
		"`table_name` VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, `row_key` VARBINARY(32) NOT NULL, " +
		"`lvl` INT UNSIGNED NOT NULL, `ts` BIGINT NOT NULL, `domain` INT UNSIGNED NOT NULL, `deleted` TINYINT NOT NULL, " +
		"PRIMARY KEY (`table_name`, `row_key`)) ENGINE=InnoDB"
}

// Conflict policies (config.Policy*).
const (
	PolicyStop           = "stop"
	PolicyLastWriterWins = "last-writer-wins"
	PolicyPriority       = "priority"
)

// Resolution is how a table's conflicts are resolved.
type Resolution struct {
	Policy string
	// Winner names the node whose changes win under PolicyPriority.
	Winner string
}

// version is one row_versions row: which write last set a key.
type version struct {
	table   string
	key     []byte
	lvl     uint64
	ts      int64
	domain  uint32
	deleted bool
}

func (v version) String() string {
	if v.ts == 0 {
		return "none"
	}
	s := fmt.Sprintf("level %d, %s, domain %d", v.lvl, time.UnixMicro(v.ts).UTC().Format("2006-01-02 15:04:05.000000"), v.domain)
	if v.deleted {
		s += ", a delete"
	}
	return s
}

// versioned reports whether rows of tbl wait for their versions.
func (t *Target) versioned(tbl *pipeline.Table) bool {
	return t.resolution(tbl).Policy != PolicyStop && len(tbl.PrimaryKey) > 0
}

func (t *Target) resolution(tbl *pipeline.Table) Resolution {
	if t.cfg.OriginDomain == nil || t.cfg.Resolve == nil {
		return Resolution{Policy: PolicyStop}
	}
	return t.cfg.Resolve(tbl.Database, tbl.Name)
}

func (t *Target) isVersions(tbl *pipeline.Table) bool {
	return t.cfg.OriginDomain != nil && strings.EqualFold(tbl.Database, t.cfg.Schema) && tbl.Name == VersionsTable
}

// takeVersioned handles rows of a versioned table (held until their
// versions come) and versions (which resolve the rows held); done is false
// for any other rows, once the rows held without versions are applied.
func (t *Target) takeVersioned(ctx context.Context, rows []*pipeline.Event) (done bool, err error) {
	tbl := rows[0].Table
	switch {
	case t.isVersions(tbl):
		return true, t.resolveHeld(ctx, rows)
	case t.versioned(tbl):
		if err := t.applyUnversioned(ctx); err != nil {
			return true, err
		}
		if err := t.checkRows(ctx, rows); err != nil {
			return true, err
		}
		t.held = append(t.held, rows...)
		return true, nil
	}
	return false, t.applyUnversioned(ctx)
}

// applyUnversioned applies held rows no version followed (a write the
// triggers did not see: a table created since they were installed, a
// foreign key's cascade): as under policy stop, a conflict stops.
func (t *Target) applyUnversioned(ctx context.Context) error {
	if len(t.held) == 0 {
		return nil
	}
	rows := t.held
	t.held = nil
	t.log.Warn().Str("table", qualified(rows[0].Table)).Int("rows", len(rows)).
		Msg("master-master: rows without versions (triggers missing on the origin?): applied as under policy stop")
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].Table == rows[i].Table && rows[j].Op == rows[i].Op {
			j++
		}
		if err := t.checkConflicts(ctx, rows[i:j]); err != nil {
			return err
		}
		if err := t.applyRun(ctx, rows[i:j], false); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// resolveHeld pairs the held rows, in order, with the versions that follow
// them: an insert, an update or a delete has one, an update that moves its
// key two (the old key's delete, then the new key).
func (t *Target) resolveHeld(ctx context.Context, vrows []*pipeline.Event) error {
	vs := make([]version, 0, len(vrows))
	for _, ev := range vrows {
		v, err := versionOf(ev)
		if err != nil {
			return err
		}
		vs = append(vs, v)
	}
	for len(t.held) > 0 {
		ev := t.held[0]
		n := 1
		if ev.Op == pipeline.OpUpdate && keyChanged(ev.Table, ev) {
			n = 2
		}
		if len(vs) < n || vs[0].table != ev.Table.Database+"."+ev.Table.Name {
			break
		}
		if err := t.resolve(ctx, ev, vs[:n]); err != nil {
			return err
		}
		t.held, vs = t.held[1:], vs[n:]
	}
	for _, v := range vs { // versions of rows not held here: keep the newer
		if err := t.takeIfNewer(ctx, v); err != nil {
			return err
		}
	}
	return nil
}

// resolve applies ev where its versions are newer than this master's, and
// records a conflict where the row here was not the one the origin changed
// or where this master's version won.
func (t *Target) resolve(ctx context.Context, ev *pipeline.Event, vs []version) error {
	tbl := ev.Table
	matched, err := t.sawSameRow(ctx, ev)
	if err != nil {
		return err
	}
	current := ""
	if !matched {
		if current, err = t.currentRow(ctx, tbl, ev); err != nil {
			return err
		}
	}
	var ins, locals []string
	kept := false
	for i, v := range vs {
		local, won, err := t.newer(ctx, v)
		if err != nil {
			return err
		}
		ins, locals = append(ins, v.String()), append(locals, local.String())
		if !won {
			kept = true
			continue
		}
		if err := t.applyVersioned(ctx, ev, i, len(vs)); err != nil {
			return err
		}
		if err := t.saveVersion(ctx, v); err != nil {
			return err
		}
	}
	if matched && !kept {
		return nil
	}
	return t.recordResolved(ctx, ev, current, versionsText{in: ins, local: locals, kept: kept})
}

// versionsText is what a resolved conflict's record says of the versions.
type versionsText struct {
	in, local []string // each key's incoming and local version
	kept      bool     // a local version won
}

// applyVersioned applies part i of n of ev: an update that moves its key is
// the old key's delete (0) and the new key's upsert (1).
func (t *Target) applyVersioned(ctx context.Context, ev *pipeline.Event, i, n int) error {
	tbl := ev.Table
	switch {
	case ev.Op == pipeline.OpDelete, n == 2 && i == 0:
		return t.deleteKeys(ctx, tbl, []*pipeline.Event{{Kind: ev.Kind, Pos: ev.Pos, Table: tbl, Op: pipeline.OpDelete, Before: ev.Before}}, true)
	}
	return t.upsert(ctx, tbl, []*pipeline.Event{ev})
}

// sawSameRow reports whether the row here is the one the origin changed:
// an insert's key is free, an update's or delete's before image is here.
func (t *Target) sawSameRow(ctx context.Context, ev *pipeline.Event) (bool, error) {
	if ev.Op == pipeline.OpInsert {
		n, err := t.existing(ctx, ev.Table, []*pipeline.Event{ev})
		return n == 0, err
	}
	return t.matches(ctx, ev.Table, ev)
}

// newer locks this master's version of v's key and reports whether v is
// newer: a higher level, then a later time, then an earlier master.
func (t *Target) newer(ctx context.Context, v version) (version, bool, error) {
	local := version{table: v.table, key: v.key}
	var domain uint64
	err := t.ex.QueryRowContext(ctx, "SELECT `lvl`, `ts`, `domain`, `deleted` FROM "+t.versionsName()+" WHERE `table_name` = ? AND `row_key` = ? FOR UPDATE",
		v.table, v.key).Scan(&local.lvl, &local.ts, &domain, &local.deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return local, true, nil
	}
	if err != nil {
		return local, false, fmt.Errorf("read the version of a row of %s: %w", v.table, err)
	}
	local.domain = uint32(domain)
	return local, t.beats(v, local), nil
}

// beats orders versions.
func (t *Target) beats(a, b version) bool {
	switch {
	case a.lvl != b.lvl:
		return a.lvl > b.lvl
	case a.ts != b.ts:
		return a.ts > b.ts
	}
	return t.rank(a.domain) < t.rank(b.domain)
}

// rank is a domain's place in the masters' order (unknown ones last).
func (t *Target) rank(d uint32) int {
	if i := slices.Index(t.cfg.MasterDomains, d); i >= 0 {
		return i
	}
	return len(t.cfg.MasterDomains)
}

// takeIfNewer saves v when it is newer than this master's.
func (t *Target) takeIfNewer(ctx context.Context, v version) error {
	_, won, err := t.newer(ctx, v)
	if err != nil || !won {
		return err
	}
	return t.saveVersion(ctx, v)
}

func (t *Target) saveVersion(ctx context.Context, v version) error {
	_, err := t.ex.ExecContext(ctx, "INSERT INTO "+t.versionsName()+" (`table_name`, `row_key`, `lvl`, `ts`, `domain`, `deleted`) VALUES (?, ?, ?, ?, ?, ?) "+
		"ON DUPLICATE KEY UPDATE `lvl` = VALUES(`lvl`), `ts` = VALUES(`ts`), `domain` = VALUES(`domain`), `deleted` = VALUES(`deleted`)",
		v.table, v.key, v.lvl, v.ts, v.domain, v.deleted)
	if err != nil {
		return fmt.Errorf("save the version of a row of %s: %w", v.table, err)
	}
	return nil
}

// recordResolved records a conflict the versions resolved: the row here
// was not the one the origin changed (current), or this master's version
// won; the worker goes on.
func (t *Target) recordResolved(ctx context.Context, ev *pipeline.Event, current string, vt versionsText) error {
	res := t.resolution(ev.Table)
	policy := res.Policy
	if res.Policy == PolicyPriority {
		policy += " (" + res.Winner + ")"
	}
	if current == "" {
		current = "as the origin saw it"
	}
	r := conflictRecord{key: describeKey(ev.Table, image(ev)), policy: policy, resolution: "the incoming change won",
		incoming: describeChange(ev.Table, ev) + ", version " + strings.Join(vt.in, " / "),
		current:  current + ", version " + strings.Join(vt.local, " / ")}
	if t.txnOrigin != nil {
		r.origin = t.txnOrigin.String()
	}
	if vt.kept {
		r.resolution = "this master's row won"
	}
	t.conflicts++ // counted at commit (TakeConflicts)
	t.log.Info().Str("table", qualified(ev.Table)).Str("key", r.key).Str("origin", r.origin).Str("policy", policy).Str("resolution", r.resolution).
		Msg("master-master conflict resolved")
	if err := t.recordConflict(ctx, ev.Table, ev, r); err != nil {
		t.log.Warn().Err(err).Msg("could not record the conflict in the conflicts table")
	}
	return nil
}

// TakeConflicts returns the conflicts versions resolved since the last
// call (sink.ConflictCounter); they count once their transaction commits.
func (t *Target) TakeConflicts() int {
	n := t.committedConflicts
	t.committedConflicts = 0
	return n
}

func (t *Target) versionsName() string {
	return quoteIdent(t.cfg.Schema) + "." + quoteIdent(VersionsTable)
}

// versionOf reads a versions row's after image.
func versionOf(ev *pipeline.Event) (version, error) {
	var v version
	if ev.After == nil {
		return v, fmt.Errorf("%w: a %s row of %s without an after image", pipeline.ErrMalformed, opName(ev.Op), qualified(ev.Table))
	}
	for i, c := range ev.Table.Columns {
		var err error
		switch c.Name {
		case "table_name":
			v.table, err = asString(ev.After[i])
		case "row_key":
			var s string
			s, err = asString(ev.After[i])
			v.key = []byte(s)
		case "lvl":
			v.lvl, err = asUint(ev.After[i])
		case "ts":
			var u uint64
			u, err = asUint(ev.After[i])
			v.ts = int64(u)
		case "domain":
			var u uint64
			u, err = asUint(ev.After[i])
			v.domain = uint32(u)
		case "deleted":
			var u uint64
			u, err = asUint(ev.After[i])
			v.deleted = u != 0
		}
		if err != nil {
			return v, fmt.Errorf("%w: column %s of %s: %w", pipeline.ErrMalformed, c.Name, qualified(ev.Table), err)
		}
	}
	if v.table == "" || len(v.key) == 0 {
		return v, fmt.Errorf("%w: a row of %s without table_name or row_key", pipeline.ErrMalformed, qualified(ev.Table))
	}
	return v, nil
}

func asString(x any) (string, error) {
	switch x := x.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	}
	return "", fmt.Errorf("%T is not text", x)
}

func asUint(x any) (uint64, error) {
	switch x := x.(type) {
	case uint64:
		return x, nil
	case int64:
		if x >= 0 {
			return uint64(x), nil
		}
	}
	return 0, fmt.Errorf("%v (%T) is not a non-negative integer", x, x)
}
