package main

import "testing"

func TestPlanOnly(t *testing.T) {
	p := newPlan(options{only: "md5,ceiling", repeat: 3})
	if !p.wants("md5") || !p.wants("ceiling") || p.wants("default") {
		t.Fatalf("--only md5,ceiling selects %v", p.want)
	}
	for _, v := range p.variants {
		if v.key == "md5" && v.repeat != 3 {
			t.Fatalf("md5 named in --only runs %d times, want 3", v.repeat)
		}
	}
}

func TestPlanAll(t *testing.T) {
	if p := newPlan(options{repeat: 2}); !p.wants("parallel-1") || !p.wants("ceiling") || len(p.variants) < 2 {
		t.Fatal("no --only does not select all")
	}
}

func TestPlanCustom(t *testing.T) {
	c := newPlan(options{only: "chunk=100,parallel=3,hash=md5,keyset", repeat: 2})
	v := c.variants[0]
	if len(c.variants) != 1 || v.chunk != 100 || v.parallel != 3 || v.hash != "md5" || !v.keyset || v.repeat != 2 || c.wants("ceiling") {
		t.Fatalf("custom variant %+v, wants ceiling %v", v, c.wants("ceiling"))
	}
	if _, ok := custom("chunk=x,parallel=1"); ok {
		t.Fatal("a bad chunk accepted")
	}
}
