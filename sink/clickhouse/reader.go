package clickhouse

import (
	"context"
	"strings"
	"time"
)

// Reader runs SELECTs on a ClickHouse server over the sink's HTTP client,
// for verify; NULL comes back as nil.
type Reader struct{ cl *client }

// NewReader returns a Reader of the server at rawURL
// (http://user:password@host:8123/); timeout bounds one request.
func NewReader(rawURL string, timeout time.Duration) (*Reader, error) {
	cl, err := newClient(rawURL)
	if err != nil {
		return nil, err
	}
	cl.hc.Timeout = timeout
	return &Reader{cl: cl}, nil
}

// Close drops the idle connections; a nil Reader is fine.
func (r *Reader) Close() {
	if r != nil {
		r.cl.close()
	}
}

// Query runs a SELECT and returns its rows: \N is nil, other fields are
// unescaped. A missing table or database is an error Missing reports.
func (r *Reader) Query(ctx context.Context, q string) ([][]*string, error) {
	body, err := r.cl.do(ctx, nil, strings.NewReader(q+" FORMAT TabSeparated"))
	if err != nil {
		return nil, err
	}
	return parseNullableTSV(string(body)), nil
}

// parseNullableTSV splits TabSeparated output: \N is nil, other fields
// are unescaped.
func parseNullableTSV(body string) [][]*string {
	if body == "" {
		return nil
	}
	var rows [][]*string
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		fields := strings.Split(line, "\t")
		row := make([]*string, len(fields))
		for i, f := range fields {
			if f != `\N` {
				s := UnescapeTSV(f)
				row[i] = &s
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// Missing reports an error of a table or database that does not exist.
func Missing(err error) bool { return missing(err) }
