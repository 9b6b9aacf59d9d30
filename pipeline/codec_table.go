package pipeline

import "sync/atomic"

// tableEncoding is the part of a row message that depends only on its *Table,
// encoded once per table: the column names of the images, source.db and
// source.table, rowcast.pk and rowcast.columns are then copied instead of
// escaped and checked again for every row.
//
// The cache is keyed by the *Table pointer, which is sound because a Table
// must not be modified once events refer to it (see Table). It holds the
// tables it knows alive, up to tableCacheSize of them.
type tableEncoding struct {
	t *Table
	// key is {"db":..,"table":..,"pk":{ ; or the whole key, ending in
	// "pk":null}, for a table without a primary key.
	key []byte
	// keyCols[i] is the name of primary key column i with its colon, after
	// a comma for i > 0.
	keyCols [][]byte
	// cols[i] is column i's name with its colon, after '{' for the first
	// column and ',' for the others: an image is cols[i] and value i in turn,
	// then '}'.
	cols [][]byte
	// scope is ,"db":..,"table":.. of the source block.
	scope []byte
	// shape is rowcast.pk and rowcast.columns (msgWriter.tableShape).
	shape []byte
}

// encodingCache is a Codec's set of tableEncodings. The last one used is
// read without a lock: a reader publishes the rows of one table after
// another.
type encodingCache struct {
	last atomic.Pointer[tableEncoding]
	m    map[*Table]*tableEncoding // guarded by Codec.mu
}

// tableEncoding returns the cached encoding of t, building it on first use.
// It returns nil when t cannot be encoded (a name that is not UTF-8, an
// unknown value kind...): the caller then takes the uncached path, which
// reports the error with the event's position.
func (c *Codec) tableEncoding(t *Table) *tableEncoding {
	if te := c.enc.last.Load(); te != nil && te.t == t {
		return te
	}
	te := c.cachedEncoding(t)
	if te != nil {
		c.enc.last.Store(te)
	}
	return te
}

func (c *Codec) cachedEncoding(t *Table) *tableEncoding {
	c.mu.Lock()
	te, ok := c.enc.m[t]
	c.mu.Unlock()
	if ok {
		return te
	}
	te = buildTableEncoding(t)
	c.mu.Lock()
	c.enc.m = cachePut(c.enc.m, t, te)
	c.mu.Unlock()
	return te
}

// cachePut stores v under k in m, which it makes on first use, evicting an
// entry at random when m holds tableCacheSize of them.
func cachePut[K comparable, V any](m map[K]V, k K, v V) map[K]V {
	if m == nil {
		m = make(map[K]V)
	}
	if len(m) >= tableCacheSize {
		for old := range m {
			delete(m, old)
			break
		}
	}
	m[k] = v
	return m
}

// buildTableEncoding writes the parts of t's messages into one buffer, in
// message order, and cuts them out of it.
func buildTableEncoding(t *Table) *tableEncoding {
	if checkTable(t) != nil {
		return nil
	}
	te := &tableEncoding{t: t, keyCols: make([][]byte, len(t.PrimaryKey)), cols: make([][]byte, len(t.Columns))}
	var err error
	w := msgWriter{e: &Event{Kind: KindRow, Table: t}, err: &err}
	var b []byte
	start := 0
	cut := func() []byte {
		part := b[start:len(b):len(b)]
		start = len(b)
		return part
	}
	b = append(b, `{"db":`...)
	b = w.str(b, t.Database, "")
	b = append(b, `,"table":`...)
	b = w.str(b, t.Name, "")
	if len(t.PrimaryKey) == 0 {
		b = append(b, `,"pk":null}`...)
	} else {
		b = append(b, `,"pk":{`...)
	}
	te.key = cut()
	for i, ci := range t.PrimaryKey {
		b = w.str(comma(b, i), t.Columns[ci].Name, "")
		b = append(b, ':')
		te.keyCols[i] = cut()
	}
	for i := range t.Columns {
		b = w.str(open(b, i), t.Columns[i].Name, "")
		b = append(b, ':')
		te.cols[i] = cut()
	}
	b = w.scope(b, nil)
	te.scope = cut()
	b = w.tableShape(b)
	te.shape = cut()
	if err != nil {
		return nil
	}
	return te
}

// appendRowKey is AppendKey of a row event through te.
func appendRowKey(b []byte, e *Event, te *tableEncoding) ([]byte, error) {
	b = append(b, te.key...)
	t := e.Table
	if len(t.PrimaryKey) == 0 {
		return b, nil
	}
	img := e.keyImage()
	var err error
	for i, ci := range t.PrimaryKey {
		b = append(b, te.keyCols[i]...)
		if b, err = appendValue(b, t.Columns[ci].Kind, img[ci]); err != nil {
			return b, columnErr(e, ci, err)
		}
	}
	return append(b, "}}"...), nil
}

// appendImage appends a row image of e's table as an object of column name
// to value, in table order, or null; through te, the table's encoding, if
// it has one.
func appendImage(b []byte, e *Event, te *tableEncoding, img []any) ([]byte, error) {
	switch {
	case img == nil:
		return append(b, "null"...), nil
	case te == nil:
		return appendImageNamed(b, e, img)
	}
	cols := e.Table.Columns
	var err error
	for i := range cols {
		b = append(b, te.cols[i]...)
		if b, err = appendValue(b, cols[i].Kind, img[i]); err != nil {
			return b, columnErr(e, i, err)
		}
	}
	return append(b, '}'), nil
}

// appendImageNamed is appendImage writing each column's name.
func appendImageNamed(b []byte, e *Event, img []any) ([]byte, error) {
	var err error
	w := msgWriter{e: e, err: &err}
	for i := range e.Table.Columns {
		b = w.str(open(b, i), e.Table.Columns[i].Name, "column name")
		b = append(b, ':')
		b = w.value(b, i, img[i])
	}
	return append(b, '}'), err
}
