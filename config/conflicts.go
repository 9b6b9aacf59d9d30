package config

import (
	"slices"
	"sort"
	"strings"

	"github.com/rowcast/rowcast/sink/mysql"
)

// Conflict policies of a master-master topology (docs/MASTER-MASTER.md),
// as the sink knows them.
const (
	// PolicyStop records the conflict and stops the sink: the operator
	// decides.
	PolicyStop = mysql.PolicyStop
	// PolicyLastWriterWins keeps the change with the later version: the
	// source time of the write, ties broken by the order of masters.
	PolicyLastWriterWins = mysql.PolicyLastWriterWins
	// PolicyPriority keeps the change of the named node in every conflict it
	// takes part in; the others' conflicts go by last-writer-wins.
	PolicyPriority = mysql.PolicyPriority
)

// Conflicts configures how a master-master set resolves two masters
// changing one row at once.
type Conflicts struct {
	// Policy is the cluster's default. Default stop.
	Policy string `yaml:"policy"`
	// Priority is the winning node of policy priority.
	Priority string `yaml:"priority"`
	// Tables overrides the default per table, keyed "db.table".
	Tables map[string]TablePolicy `yaml:"tables"`
}

// TablePolicy is one table's conflict policy.
type TablePolicy struct {
	Policy   string `yaml:"policy"`
	Priority string `yaml:"priority"`
}

// ConflictPolicy is the policy of db.table and, for priority, its node.
func (c *Config) ConflictPolicy(db, table string) (policy, priority string) {
	if tp, ok := c.Conflicts.Tables[db+"."+table]; ok && tp.Policy != "" {
		return tp.Policy, tp.Priority
	}
	if c.Conflicts.Policy == "" {
		return PolicyStop, ""
	}
	return c.Conflicts.Policy, c.Conflicts.Priority
}

// Versioned reports whether rows carry versions (any policy but stop).
func (c *Config) Versioned() bool {
	if !c.MasterMaster() {
		return false
	}
	if c.Conflicts.Policy != "" && c.Conflicts.Policy != PolicyStop {
		return true
	}
	for _, tp := range c.Conflicts.Tables {
		if tp.Policy != "" && tp.Policy != PolicyStop {
			return true
		}
	}
	return false
}

func (c *Config) validateConflicts(add addFunc) {
	if !c.MasterMaster() {
		if c.Conflicts.Policy != "" || len(c.Conflicts.Tables) > 0 {
			add("conflicts: only for `topology: master-master`")
		}
		return
	}
	c.validatePolicy(add, "conflicts", TablePolicy{Policy: c.Conflicts.Policy, Priority: c.Conflicts.Priority})
	keys := make([]string, 0, len(c.Conflicts.Tables))
	for k := range c.Conflicts.Tables {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if db, table, ok := strings.Cut(k, "."); !ok || db == "" || table == "" {
			add("conflicts.tables: %q is not db.table", k)
		}
		c.validatePolicy(add, "conflicts.tables."+k, c.Conflicts.Tables[k])
	}
}

func (c *Config) validatePolicy(add addFunc, where string, tp TablePolicy) {
	switch tp.Policy {
	case "", PolicyStop, PolicyLastWriterWins:
		if tp.Priority != "" {
			add("%s.priority: only for policy priority", where)
		}
	case PolicyPriority:
		if !slices.Contains(c.Masters, tp.Priority) {
			add("%s.priority: %q is not one of masters (%s): name the master whose changes win", where, tp.Priority, strings.Join(c.Masters, ", "))
		}
	default:
		add("%s.policy: %q is not a policy; use stop, last-writer-wins or priority", where, tp.Policy)
	}
}
