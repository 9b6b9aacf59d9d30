package source

import (
	"slices"
	"sync"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// rowsDecoder is the reader's go-mysql RowsEventDecodeFunc. It decodes rows
// events with go-mysql's own DecodeHeader and DecodeData, against a view of
// the event's TABLE_MAP that differs in two ways:
//
//   - DATE, TIME2, DATETIME2 and TIMESTAMP2 columns, and DECIMAL columns of
//     up to 8 bytes (about 18 digits), read as BIT of their byte length,
//     which go-mysql returns as one big-endian int64. With ParseTime=false
//     go-mysql formats each temporal value with fmt.Sprintf (or
//     time.Format), most of its decode time, and a DECIMAL through a copy
//     and a strings.Builder; formatPacked makes the same text from the bytes
//     for a fraction of the cost. ParseTime=true would be cheap too, but
//     go-mysql builds DATETIMEs with time.Date then, which turns the invalid
//     dates that ALLOW_INVALID_DATES stores ('2024-02-30') into other dates.
//   - No signedness: go-mysql builds a map of it (TableMapEvent.UnsignedMap)
//     for every row image. Unsigned integers then arrive as signed values
//     of the column's width, which uintConv reinterprets.
//
// The converters of these columns (buildColumn) take both forms, packed
// int64 and go-mysql's string. Nothing else reads the view: the RowsEvent
// leaves with its own TABLE_MAP, and the stream describes tables from the
// TABLE_MAP events it receives.
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
