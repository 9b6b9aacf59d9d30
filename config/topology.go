package config

import (
	"fmt"
	"slices"
	"strings"
)

// Topologies.
const (
	TopologyMasterReplica = "master-replica"
	TopologyMasterMaster  = "master-master"
)

// MasterMaster reports a master-master topology: every node of Masters
// takes writes; each master's reader publishes its binlog to a topic of its
// own, and the other masters (and its read replicas) apply it. A config of
// this topology describes the whole set; ForMaster derives the config of
// one master's unit: its reader and the sinks of its topic.
func (c *Config) MasterMaster() bool { return c.Topology == TopologyMasterMaster }

func (c *Config) setTopologyDefaults() {
	setDefault(&c.Topology, TopologyMasterReplica)
	if !c.MasterMaster() {
		return
	}
	if c.Master == "" && len(c.Masters) > 0 {
		c.Master = c.Masters[0]
	}
	// The masters start from the same data: no snapshot between them.
	setDefault(&c.Source.Start, StartCurrent)
}

// ForMaster is the config of master's unit in a master-master topology:
// master is the config's master, its topic is the cluster's topic with
// ".<master>" appended, the other masters and its read replicas are the
// replicas, the metrics address is the master node's http ("off" when it
// has none), the reader's server_id is offset by the master's place in
// masters, and sinks commit each source transaction alone, so that it
// keeps its origin GTID.
func (c *Config) ForMaster(master string) (*Config, error) {
	if !c.MasterMaster() {
		return nil, fmt.Errorf("--master %s: the config's topology is %s; --master is for a master-master topology", master, c.Topology)
	}
	i := slices.Index(c.Masters, master)
	if i < 0 {
		return nil, fmt.Errorf("--master %s: not one of the config's masters (%s)", master, strings.Join(c.Masters, ", "))
	}
	d := *c
	d.Master = master
	d.Replicas = append(c.otherMasters(master), c.ReadReplicas[master]...)
	d.Kafka.Topic = c.Kafka.Topic + "." + master
	d.Source.ServerID = c.Source.ServerID + uint32(i)
	n, _ := c.Node(master)
	d.HTTP = n.HTTP
	if d.HTTP == "" {
		d.HTTP = "off"
	}
	d.Sink.MaxTxnMerge = 1
	return &d, nil
}

// otherMasters are the masters but one.
func (c *Config) otherMasters(but string) []string {
	var out []string
	for _, m := range c.Masters {
		if m != but {
			out = append(out, m)
		}
	}
	return out
}

// OriginDomain is, when node is another master of a master-master
// topology, the GTID domain of the config's master: node's sink applies
// only the transactions of that domain, under their own GTIDs.
func (c *Config) OriginDomain(node string) (uint32, bool) {
	if !c.MasterMaster() || node == c.Master || !slices.Contains(c.Masters, node) {
		return 0, false
	}
	n, _ := c.Node(c.Master)
	if n.GTIDDomainID == nil {
		return 0, false
	}
	return *n.GTIDDomainID, true
}

// MasterDomains are the GTID domains of the masters of a master-master
// topology, in the order of masters.
func (c *Config) MasterDomains() []uint32 {
	var out []uint32
	for _, m := range c.Masters {
		if n, ok := c.Node(m); ok && n.GTIDDomainID != nil {
			out = append(out, *n.GTIDDomainID)
		}
	}
	return out
}

// IsMaster reports whether node takes writes: the master, or any master of
// a master-master topology.
func (c *Config) IsMaster(node string) bool {
	return node == c.Master || (c.MasterMaster() && slices.Contains(c.Masters, node))
}

func (c *Config) validateTopology(add addFunc) {
	c.validateConflicts(add)
	switch c.Topology {
	case TopologyMasterReplica:
		if len(c.Masters) > 0 || len(c.ReadReplicas) > 0 {
			add("masters, read_replicas: only for `topology: master-master`; a master-replica config names its master in `master`")
		}
		return
	case TopologyMasterMaster:
	default:
		add("topology: %q is not a topology; use master-replica (the default) or master-master", c.Topology)
		return
	}
	c.validateMasters(add)
	c.validateReadReplicas(add)
	if c.Source.Start == StartSnapshot || c.Source.Start == StartEarliest {
		add("source.start: %s is not for a master-master set, whose masters start from the same data: use current (the default), or a GTID set", c.Source.Start)
	}
	if c.Failover.Mode == FailoverAuto {
		add("failover.mode: auto promotes a replica of one master; in a master-master topology every master already takes writes: set it to manual")
	}
}

func (c *Config) validateMasters(add addFunc) {
	if len(c.Masters) < 2 {
		add("masters: list at least two writable mysql nodes, e.g. `masters: [db1, db2]`")
	}
	if !slices.Contains(c.Masters, c.Master) {
		add("master: %q is not one of masters; leave it out in a master-master topology", c.Master)
	}
	if len(c.Replicas) > 0 {
		add("replicas: not used in a master-master topology, where every master applies the others' topics; list each master's read replicas in read_replicas")
	}
	domains := map[uint32]string{}
	for i, m := range c.Masters {
		n, ok := c.Node(m)
		switch {
		case !ok:
			add("masters[%d]: %q is not a node; use one of %s", i, m, strings.Join(c.nodeNames(), ", "))
			continue
		case n.Kind != KindMySQL:
			add("masters[%d]: %q is a %s node; only mysql nodes take writes", i, m, n.Kind)
			continue
		case slices.Index(c.Masters, m) != i:
			add("masters[%d]: %q is listed twice", i, m)
			continue
		case n.GTIDDomainID == nil:
			add("nodes (%s).gtid_domain_id: required of a master in a master-master topology: give each master its own, e.g. %d, and set it on the server (SET GLOBAL gtid_domain_id=%d, and gtid_domain_id=%d in its my.cnf)", m, i+1, i+1, i+1)
			continue
		}
		if other, dup := domains[*n.GTIDDomainID]; dup {
			add("nodes (%s).gtid_domain_id: %d is %s's too; each master needs its own GTID domain, or their transactions cannot be told apart", m, *n.GTIDDomainID, other)
		}
		domains[*n.GTIDDomainID] = m
	}
}

func (c *Config) validateReadReplicas(add addFunc) {
	owner := map[string]string{}
	keys := make([]string, 0, len(c.ReadReplicas))
	for m := range c.ReadReplicas {
		keys = append(keys, m)
	}
	slices.Sort(keys) // problems in a stable order
	for _, m := range keys {
		rs := c.ReadReplicas[m]
		if !slices.Contains(c.Masters, m) {
			add("read_replicas: %q is not one of masters (%s)", m, strings.Join(c.Masters, ", "))
		}
		for _, r := range rs {
			_, isNode := c.Node(r)
			switch {
			case !isNode:
				add("read_replicas.%s: %q is not a node; use one of %s", m, r, strings.Join(c.nodeNames(), ", "))
			case slices.Contains(c.Masters, r):
				add("read_replicas.%s: %q is a master; a master applies the other masters' topics by itself", m, r)
			case owner[r] != "":
				add("read_replicas.%s: %q already follows %s; a read replica follows one master", m, r, owner[r])
			}
			owner[r] = m
		}
	}
}
