package source

import (
	"slices"
	"sync"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// rowsDecoder is the reader's go-mysql RowsEventDecodeFunc: go-mysql's own
// DecodeHeader and DecodeData against a view of the TABLE_MAP (decodeView)
// in which DATE, TIME2, DATETIME2, TIMESTAMP2 and short DECIMAL columns read
// as BIT (packed, see packed.go) and signedness is dropped (uintConv
// reinterprets). Why: docs/DESIGN.md, "The rows-event decode view".
type rowsDecoder struct {
	mu    sync.Mutex // go-mysql does not say from which goroutines it calls decode
	views map[uint64]tableView
}

// tableView is the decode view of one TABLE_MAP event. go-mysql makes a new
// TableMapEvent for every TABLE_MAP (one per statement), so a view is built
// once per statement and table.
type tableView struct {
	orig, view *replication.TableMapEvent
}

func newRowsDecoder() *rowsDecoder {
	return &rowsDecoder{views: map[uint64]tableView{}}
}

func (d *rowsDecoder) decode(e *replication.RowsEvent, data []byte) error {
	pos, err := e.DecodeHeader(data)
	if err != nil {
		return err
	}
	orig := e.Table
	e.Table = d.view(orig)
	err = e.DecodeData(pos, data)
	e.Table = orig
	return err
}

func (d *rowsDecoder) view(t *replication.TableMapEvent) *replication.TableMapEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v, ok := d.views[t.TableID]; ok && v.orig == t {
		return v.view
	}
	if len(d.views) >= 1024 {
		clear(d.views)
	}
	v := decodeView(t)
	d.views[t.TableID] = tableView{orig: t, view: v}
	return v
}

// decodeView returns t itself when it needs no change.
func decodeView(t *replication.TableMapEvent) *replication.TableMapEvent {
	var types []byte
	var meta []uint16
	for i, typ := range t.ColumnType {
		if i >= len(t.ColumnMeta) {
			break
		}
		n := packedLen(typ, t.ColumnMeta[i])
		if n == 0 {
			continue
		}
		if types == nil {
			types, meta = slices.Clone(t.ColumnType), slices.Clone(t.ColumnMeta)
		}
		// BIT metadata: bytes<<8 | extra bits; go-mysql reads (8*bytes+7)/8
		// bytes as a big-endian integer (decodeBit).
		types[i], meta[i] = mysql.MYSQL_TYPE_BIT, uint16(n)<<8
	}
	if types == nil && len(t.SignednessBitmap) == 0 {
		return t
	}
	if types == nil {
		types, meta = t.ColumnType, t.ColumnMeta
	}
	// A new event with what decoding reads, not a copy of t: the stream's
	// goroutine fills t's lazy caches (ColumnNameString and the like) while
	// this one decodes, so only the fields t's Decode set are read here.
	return &replication.TableMapEvent{
		TableID:     t.TableID,
		Flags:       t.Flags,
		Schema:      t.Schema,
		Table:       t.Table,
		ColumnCount: t.ColumnCount,
		ColumnType:  types,
		ColumnMeta:  meta,
		NullBitmap:  t.NullBitmap,
	}
}
