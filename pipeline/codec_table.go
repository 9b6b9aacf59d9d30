package pipeline

import "sync/atomic"

// tableEncoding is the part of a row message that depends only on its *Table,
// encoded once per table: a third of a typical row message (the column names
// of the images, source.db and source.table, rowcast.pk and rowcast.columns)
// is then copied instead of escaped and checked again for every row.
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
	// shape is rowcast.pk and rowcast.columns (appendTableShape).
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
	c.mu.Lock()
	te, ok := c.enc.m[t]
	c.mu.Unlock()
	if !ok {
		te = buildTableEncoding(t)
		c.mu.Lock()
		if c.enc.m == nil {
			c.enc.m = make(map[*Table]*tableEncoding)
		}
		if len(c.enc.m) >= tableCacheSize {
			for k := range c.enc.m { // evict one entry, at random
				delete(c.enc.m, k)
				break
			}
		}
		c.enc.m[t] = te
		c.mu.Unlock()
	}
	if te != nil {
		c.enc.last.Store(te)
	}
	return te
}

func buildTableEncoding(t *Table) *tableEncoding {
	if checkTable(t) != nil {
		return nil
	}
	te := &tableEncoding{t: t}
	var ok bool
	b := []byte(`{"db":`)
	if b, ok = appendString(b, t.Database); !ok {
		return nil
	}
	b = append(b, `,"table":`...)
	if b, ok = appendString(b, t.Name); !ok {
		return nil
	}
	if len(t.PrimaryKey) == 0 {
		b = append(b, `,"pk":null}`...)
	} else {
		b = append(b, `,"pk":{`...)
	}
	te.key = b
	for i, ci := range t.PrimaryKey {
		var name []byte
		if i > 0 {
			name = append(name, ',')
		}
		if name, ok = appendString(name, t.Columns[ci].Name); !ok {
			return nil
		}
		te.keyCols = append(te.keyCols, append(name, ':'))
	}
	te.cols = make([][]byte, len(t.Columns))
	for i := range t.Columns {
		name := []byte{','}
		if i == 0 {
			name[0] = '{'
		}
		if name, ok = appendString(name, t.Columns[i].Name); !ok {
			return nil
		}
		te.cols[i] = append(name, ':')
	}
	b = []byte(`,"db":`)
	if b, ok = appendString(b, t.Database); !ok {
		return nil
	}
	b = append(b, `,"table":`...)
	if b, ok = appendString(b, t.Name); !ok {
		return nil
	}
	te.scope = b
	shape, err := appendTableShape(nil, &Event{Kind: KindRow, Table: t})
	if err != nil {
		return nil
	}
	te.shape = shape
	return te
}

// appendRowKey is AppendKey of a row event through te.
func appendRowKey(b []byte, e *Event, te *tableEncoding) ([]byte, error) {
	b = append(b, te.key...)
	t := e.Table
	if len(t.PrimaryKey) == 0 {
		return b, nil
	}
	img := e.After
	if img == nil {
		img = e.Before
	}
	var err error
	for i, ci := range t.PrimaryKey {
		b = append(b, te.keyCols[i]...)
		if b, err = appendValue(b, t.Columns[ci].Kind, img[ci]); err != nil {
			return b, columnErr(e, ci, err)
		}
	}
	return append(b, "}}"...), nil
}

// appendImageEnc is appendImage through te.
func appendImageEnc(b []byte, e *Event, te *tableEncoding, img []any) ([]byte, error) {
	if img == nil {
		return append(b, "null"...), nil
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
