package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// client speaks ClickHouse's HTTP interface: statements as POST bodies,
// inserts as the query parameter with a Native block as the body. It works
// with every server version from 18.16 on (ch-go's TCP client needs newer).
type client struct {
	base *url.URL // scheme, host, user; no database, no query
	hc   *http.Client
}

func newClient(rawURL string) (*client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("clickhouse sink: URL %q: want http://user:password@host:8123/", rawURL)
	}
	base := &url.URL{Scheme: u.Scheme, Host: u.Host, User: u.User, Path: "/"}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}
	return &client{base: base, hc: &http.Client{Transport: tr}}, nil
}

// close drops the client's idle connections.
func (c *client) close() { c.hc.CloseIdleConnections() }

// ServerError is an error reported by the ClickHouse server.
type ServerError struct {
	Code    int // ClickHouse's error code; 0 when the body had none
	Status  int // HTTP status
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("clickhouse: HTTP %d: %s", e.Status, e.Message)
}

// exec runs a statement that returns nothing.
func (c *client) exec(ctx context.Context, stmt string) error {
	_, err := c.do(ctx, nil, strings.NewReader(stmt))
	return err
}

// query runs a SELECT and returns its rows in TabSeparated format, each
// split in fields (escapes undone).
func (c *client) query(ctx context.Context, stmt string) ([][]string, error) {
	body, err := c.do(ctx, nil, strings.NewReader(stmt+" FORMAT TabSeparated"))
	if err != nil {
		return nil, err
	}
	return parseTSV(body), nil
}

// insert sends a Native block, in parts, to table's columns.
func (c *client) insert(ctx context.Context, table string, cols []string, block [][]byte) error {
	q := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") FORMAT Native"
	_, err := c.do(ctx, url.Values{"query": {q}}, newPartsBody(block))
	return err
}

// partsBody reads parts in order, as one request body of known length.
type partsBody struct {
	net.Buffers
	parts [][]byte
	n     int64
}

func newPartsBody(parts [][]byte) *partsBody {
	b := &partsBody{Buffers: slices.Clone(parts), parts: parts} // reading consumes the list, not the parts
	for _, p := range parts {
		b.n += int64(len(p))
	}
	return b
}

// setBody gives req the length, and the copy to send again on a kept-alive
// connection the server had closed, that a bytes.Reader body gets.
func (b *partsBody) setBody(req *http.Request) {
	req.ContentLength = b.n
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(newPartsBody(b.parts)), nil }
}

func (c *client) do(ctx context.Context, params url.Values, body io.Reader) ([]byte, error) {
	u := *c.base
	u.RawQuery = params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), body)
	if err != nil {
		return nil, err
	}
	if pb, ok := body.(*partsBody); ok {
		pb.setBody(req)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, serverError(resp.StatusCode, out)
	}
	return out, nil
}

var codeRE = regexp.MustCompile(`^Code: (\d+)`)

func serverError(status int, body []byte) error {
	msg := strings.TrimSpace(string(body))
	e := &ServerError{Status: status, Message: truncate(msg, 500)}
	if m := codeRE.FindStringSubmatch(msg); m != nil {
		e.Code, _ = strconv.Atoi(m[1])
	}
	return e
}

// ClickHouse error codes the sink tells apart.
const (
	codeUnknownTable             = 60
	codeTooManyParts             = 252
	codeTimeoutExceeded          = 159
	codeSocketTimeout            = 209
	codeNetworkError             = 210
	codeTooManyQueries           = 202
	codeMemoryLimitExceeded      = 241
	codeTableIsDropped           = 218
	codeUnknownDatabase          = 81
	codeNoFreeConnection         = 203
	codeAllConnectionTriesFailed = 279
)

// transientCodes go away by themselves: overload, merges behind, timeouts.
var transientCodes = map[int]bool{
	codeTooManyParts: true, codeTimeoutExceeded: true, codeSocketTimeout: true, codeNetworkError: true,
	codeTooManyQueries: true, codeMemoryLimitExceeded: true, codeTableIsDropped: true,
	codeNoFreeConnection: true, codeAllConnectionTriesFailed: true,
}

// classify marks what the sink worker should retry: network errors are
// transient for sink.Classify already; server errors are by code, and HTTP
// 502-504 from a proxy in front are transient too.
func classify(err error) error {
	var se *ServerError
	if !errors.As(err, &se) {
		return err
	}
	if transientCodes[se.Code] || se.Status == http.StatusBadGateway || se.Status == http.StatusServiceUnavailable ||
		se.Status == http.StatusGatewayTimeout {
		return markTransient(err)
	}
	return err
}

// parseTSV splits TabSeparated output into rows of unescaped fields.
func parseTSV(body []byte) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		if line == "" && len(rows) == 0 && len(body) == 0 {
			break
		}
		fields := strings.Split(line, "\t")
		for i, f := range fields {
			fields[i] = UnescapeTSV(f)
		}
		rows = append(rows, fields)
	}
	return rows
}

var tsvEscapes = map[byte]byte{'n': '\n', 't': '\t', '\\': '\\', '0': 0, 'b': '\b', 'f': '\f', 'r': '\r', '\'': '\''}

// UnescapeTSV undoes ClickHouse's escaping of a field of TabSeparated
// output (\n, \t, \\, \0, ...); verify reads the same output.
func UnescapeTSV(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			if r, ok := tsvEscapes[s[i+1]]; ok {
				b.WriteByte(r)
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
